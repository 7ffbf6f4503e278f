<?php
/*
 * The Gatehouse SAML connections under test. The Go helper writes them to
 * GH_SSP_DIR/sp-remote.json after creating each connection (the ACS URL
 * holds the connection ID), as a map of entity ID to SimpleSAMLphp SP
 * metadata options (AssertionConsumerService, certData, assertion.encryption...).
 */
$file = getenv('GH_SSP_DIR') . '/sp-remote.json';
if (is_file($file)) {
    foreach (json_decode(file_get_contents($file), true) as $entityID => $sp) {
        $metadata[$entityID] = $sp;
    }
}

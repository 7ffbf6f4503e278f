<?php
/*
 * SimpleSAMLphp 1.19 (Debian package) configuration for Gatehouse's
 * end-to-end tests: an IdP on loopback, served by `php -S`. Everything
 * that varies per run comes from the environment the Go helper sets
 * (e2e/saml_idp_test.go):
 *   GH_SSP_BASEURL  http://127.0.0.1:PORT/
 *   GH_SSP_DIR      a temporary directory: idp.key, idp.crt, sp-remote.json,
 *                   sessions, logs
 */
$dir = getenv('GH_SSP_DIR');

$config = [
    'baseurlpath' => getenv('GH_SSP_BASEURL'),
    'certdir' => $dir . '/',
    'loggingdir' => $dir . '/',
    'datadir' => $dir . '/',
    'tempdir' => $dir . '/tmp',
    'metadatadir' => __DIR__ . '/../metadata/',

    'technicalcontact_name' => 'Gatehouse tests',
    'technicalcontact_email' => 'tests@example.org',
    'timezone' => 'UTC',
    'secretsalt' => 'gatehouse-e2e-not-a-secret',
    'auth.adminpassword' => 'gatehouse-e2e-admin',
    'admin.protectindexpage' => false,
    'admin.protectmetadata' => false,
    'admin.checkforupdates' => false,
    'trusted.url.domains' => [],

    'debug' => ['saml' => false, 'backtraces' => true, 'validatexml' => false],
    'showerrors' => true,
    'errorreporting' => false,
    'logging.level' => SimpleSAML\Logger::WARNING,
    'logging.handler' => 'file',
    'logging.logfile' => 'simplesamlphp.log',

    'enable.saml20-idp' => true,
    'enable.shib13-idp' => false,
    'enable.adfs-idp' => false,
    'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true, 'admin' => true],

    // Plain http on loopback: cookies cannot be Secure or SameSite=None.
    'session.cookie.secure' => false,
    'session.cookie.samesite' => null,
    'language.cookie.secure' => false,
    'language.cookie.samesite' => null,
    'session.phpsession.savepath' => $dir,
    'store.type' => 'phpsession',

    'metadata.sources' => [['type' => 'flatfile']],
    'production' => false,
];

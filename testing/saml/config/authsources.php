<?php
/*
 * Test users. exampleauth:UserPass shows a login form; the Go helper fills
 * it. The password of every user is "pw".
 */
$config = [
    'admin' => ['core:AdminPassword'],

    'example-userpass' => [
        'exampleauth:UserPass',
        // Full profile: names and groups.
        'ana:pw' => [
            'uid' => ['ana'],
            'mail' => ['ana@acme.test'],
            'givenName' => ['Ana'],
            'sn' => ['Lima'],
            'groups' => ['eng', 'admins'],
        ],
        // Nothing but an email address.
        'bo:pw' => [
            'uid' => ['bo'],
            'mail' => ['bo@acme.test'],
        ],
    ],
];

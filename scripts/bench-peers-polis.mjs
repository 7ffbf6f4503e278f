// Ory Polis (BoxyHQ SAML Jackson, the npm library @boxyhq/saml-jackson)
// embedded in a minimal Node HTTP server, as its README describes for
// self-hosting it inside an app, so that scripts/bench-peers.sh can drive
// it as an OIDC broker with the load tool's app-broker scenario: one OIDC
// connection to the upstream test IdP; the app signs in with the
// connection's client id and secret.
//
// Not part of Gatehouse: a benchmark harness. The library is installed
// outside the repo (docs/benchmarks.md, "Side by side with other
// brokers") and found through POLIS_DIR.
//
// Environment: POLIS_DIR (a directory whose node_modules holds
// @boxyhq/saml-jackson), PORT, UPSTREAM_ISSUER, UPSTREAM_CLIENT_ID,
// UPSTREAM_CLIENT_SECRET, REDIRECT_URI, JWS_ALG (RS256, Polis's default,
// or ES256), DB_FILE (SQLite through TypeORM's better-sqlite3 driver, as
// Polis opens it: rollback journal, synchronous=FULL; unset: Polis's
// in-memory store). Prints client_id=… and client_secret=… on stdout when
// ready.
import crypto from 'node:crypto';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

const env = (k, d) => {
	const v = process.env[k] ?? d;
	if (v === undefined) throw new Error(`${k} is not set`);
	return v;
};
const require = createRequire(path.join(env('POLIS_DIR'), 'package.json'));
const jackson = require('@boxyhq/saml-jackson');

const port = Number(env('PORT'));
const externalUrl = `http://127.0.0.1:${port}`;
const alg = env('JWS_ALG', 'RS256');
const pair =
	alg === 'ES256'
		? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
		: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const b64 = (s) => Buffer.from(s).toString('base64');

const { connectionAPIController, oauthController, oidcDiscoveryController } = await jackson.controllers({
	externalUrl,
	samlPath: '/api/oauth/saml',
	oidcPath: '/api/oauth/oidc',
	db: process.env.DB_FILE ? { engine: 'sql', type: 'sqlite', url: process.env.DB_FILE } : { engine: 'mem' },
	openid: {
		jwsAlg: alg,
		jwtSigningKeys: {
			private: b64(pair.privateKey.export({ type: 'pkcs8', format: 'pem' })),
			public: b64(pair.publicKey.export({ type: 'spki', format: 'pem' })),
		},
	},
	noAnalytics: true,
	logger: { info() {}, warn: console.error, error: console.error },
});

const redirectURI = env('REDIRECT_URI', 'http://app.example/cb');
const conn = await connectionAPIController.createOIDCConnection({
	tenant: 'bench.example',
	product: 'bench',
	name: 'upstream',
	defaultRedirectUrl: redirectURI,
	redirectUrl: [redirectURI],
	oidcDiscoveryUrl: `${env('UPSTREAM_ISSUER')}/.well-known/openid-configuration`,
	oidcClientId: env('UPSTREAM_CLIENT_ID'),
	oidcClientSecret: env('UPSTREAM_CLIENT_SECRET'),
});

const send = (res, status, body, headers = {}) => {
	res.writeHead(status, headers);
	res.end(body);
};
const json = (res, status, v) => send(res, status, JSON.stringify(v), { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
const redirect = (res, r) => (r.redirect_url ? send(res, 302, '', { Location: r.redirect_url }) : json(res, 500, { error: 'no redirect', detail: r }));
const readBody = (req) =>
	new Promise((resolve, reject) => {
		let data = '';
		req.setEncoding('utf8');
		req.on('data', (c) => (data += c));
		req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(data))));
		req.on('error', reject);
	});

const server = http.createServer(async (req, res) => {
	const u = new URL(req.url, externalUrl);
	const q = Object.fromEntries(u.searchParams);
	try {
		if (req.method === 'GET' && u.pathname === '/.well-known/openid-configuration') return json(res, 200, oidcDiscoveryController.openidConfig());
		if (req.method === 'GET' && u.pathname === '/oauth/jwks') return json(res, 200, await oidcDiscoveryController.jwks());
		if (req.method === 'GET' && u.pathname === '/api/oauth/authorize') return redirect(res, await oauthController.authorize(q));
		if (req.method === 'GET' && u.pathname === '/api/oauth/oidc') return redirect(res, await oauthController.oidcAuthzResponse(q));
		if (req.method === 'POST' && u.pathname === '/api/oauth/token')
			return json(res, 200, await oauthController.token(await readBody(req), req.headers.authorization));
		if (req.method === 'GET' && u.pathname === '/ready') return send(res, 200, 'ok');
		return send(res, 404, 'not found');
	} catch (err) {
		const status = err.statusCode || 500;
		if (status >= 500) console.error(err);
		return json(res, status, { error: err.message || String(err) });
	}
});
server.keepAliveTimeout = 90_000;
server.listen(port, '127.0.0.1', () => {
	console.log(`client_id=${conn.clientID}`);
	console.log(`client_secret=${conn.clientSecret}`);
});

// A real OpenID provider for Gatehouse's end-to-end tests: panva's
// oidc-provider (OpenID Certified), configured with one client and a list of
// accounts, and no login form: the account named by the authorization
// request's login_hint is signed in and consents at once, so a Go test can
// drive the whole flow with plain HTTP redirects.
//
// Usage: node server.mjs [--port N] [--client-id ID] [--client-secret S]
//        [--redirect-uri URI]... [--redirect-uri-prefix URI]
//        [--claims id_token|userinfo]
// Environment (used when the flag is absent): OP_PORT, OP_CLIENT_ID,
// OP_CLIENT_SECRET, OP_REDIRECT_URIS (comma-separated),
// OP_REDIRECT_URI_PREFIX, OP_CLAIMS,
// OP_CLIENT_JWKS (a JSON Web Key Set: adds a second client, "<client id>-pkjwt",
// that authenticates with private_key_jwt using those keys),
// OP_ACCOUNTS (JSON list of {sub, email, email_verified, name, given_name,
// family_name, groups, deny}).
//
// A login_hint that names no account, or an account with "deny": true,
// ends the interaction with error=access_denied.
//
// --redirect-uri-prefix (test-only relaxation) also accepts any redirect URI
// that starts with the prefix: Gatehouse's callback contains the id of a
// connection that can only be created once this provider answers discovery.
//
// Prints "READY <issuer>" on stdout once listening on 127.0.0.1.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    'redirect-uri-prefix': { type: 'string' },
    claims: { type: 'string' },
  },
});

const port = Number(args.port ?? process.env.OP_PORT ?? 0);
const clientId = args['client-id'] ?? process.env.OP_CLIENT_ID ?? 'gatehouse';
const clientSecret = args['client-secret'] ?? process.env.OP_CLIENT_SECRET ?? 'gatehouse-secret-0123456789abcdef';
const redirectURIs = args['redirect-uri'] ?? (process.env.OP_REDIRECT_URIS ?? '').split(',').filter(Boolean);
const redirectPrefix = args['redirect-uri-prefix'] ?? process.env.OP_REDIRECT_URI_PREFIX ?? '';
// id_token: every granted claim is also in the ID token; userinfo: the ID
// token carries only sub and the protocol claims, the profile comes from
// the userinfo endpoint (OIDC Core 5.4, the provider's default).
const claimsIn = args.claims ?? process.env.OP_CLAIMS ?? 'id_token';
const accounts = JSON.parse(process.env.OP_ACCOUNTS ?? '[]');
const clientJWKS = process.env.OP_CLIENT_JWKS ? JSON.parse(process.env.OP_CLIENT_JWKS) : undefined;

if (redirectURIs.length === 0 && !redirectPrefix) {
  console.error('server.mjs: give --redirect-uri or --redirect-uri-prefix (or OP_REDIRECT_URIS, OP_REDIRECT_URI_PREFIX)');
  process.exit(2);
}
// The client needs one registered URI; the prefix check admits the rest.
if (redirectURIs.length === 0) redirectURIs.push('https://gatehouse.invalid/placeholder');
if (!['id_token', 'userinfo'].includes(claimsIn)) {
  console.error('server.mjs: --claims must be id_token or userinfo');
  process.exit(2);
}

function findByHint(hint) {
  if (!hint) return undefined;
  const h = hint.toLowerCase();
  return accounts.find((a) => a.sub === hint || (a.email ?? '').toLowerCase() === h);
}

const server = http.createServer();
await new Promise((resolve) => { server.listen(port, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectURIs,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }, ...(clientJWKS ? [{
    client_id: `${clientId}-pkjwt`,
    redirect_uris: redirectURIs,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
    jwks: clientJWKS,
  }] : [])],
  async findAccount(ctx, sub) {
    const a = accounts.find((x) => x.sub === sub);
    if (!a) return undefined;
    return {
      accountId: a.sub,
      async claims() {
        const out = { sub: a.sub };
        for (const k of ['email', 'email_verified', 'name', 'given_name', 'family_name', 'groups']) {
          if (a[k] !== undefined) out[k] = a[k];
        }
        return out;
      },
    };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'given_name', 'family_name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  conformIdTokenClaims: claimsIn === 'userinfo',
  features: {
    devInteractions: { enabled: false },
  },
  interactions: {
    url(ctx, interaction) { return `/interaction/${interaction.uid}`; },
  },
  // Consent is given at once: the first-party recipe of the provider's
  // documentation (a grant with everything the client asked for).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.params.scope ?? 'openid');
    await grant.save();
    return grant;
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
  renderError(ctx, out) {
    ctx.type = 'text/plain';
    ctx.body = `oidc-provider error: ${out.error}: ${out.error_description ?? ''}`;
  },
});

if (redirectPrefix) {
  const exact = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function allowed(value) {
    return exact.call(this, value)
      || (typeof value === 'string' && value.startsWith(redirectPrefix) && !/[?#]/.test(value));
  };
}

const callback = provider.callback();
server.on('request', async (req, res) => {
  const m = /^\/interaction\/([^/?]+)/.exec(req.url);
  if (!m) {
    callback(req, res);
    return;
  }
  try {
    const details = await provider.interactionDetails(req, res);
    const account = findByHint(details.params.login_hint);
    if (!account || account.deny) {
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: account ? 'this account may not sign in' : 'no account for the login_hint',
      }, { mergeWithLastSubmission: false });
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: account.sub } }, { mergeWithLastSubmission: false });
  } catch (err) {
    console.error('interaction failed:', err);
    res.statusCode = 500;
    res.end(String(err));
  }
});

process.on('SIGTERM', () => { server.close(); process.exit(0); });
console.log(`READY ${issuer}`);

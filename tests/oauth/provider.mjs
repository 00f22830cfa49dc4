// A real OAuth 2.1 authorization server for Bulkhead's resource-server tests: oidc-provider (a
// certified OpenID Provider) on loopback, issuing RFC 9068 JWT access tokens for whatever
// resource indicator (RFC 8707) a client asks for.
//
// Usage: node provider.mjs [--port N]. Prints one JSON line on stdout once it listens:
// {"issuer": "http://127.0.0.1:<port>"}. Stops when stdin closes (so a test that dies takes it
// along) or on SIGTERM.
//
// Clients (client_secret_post: id and secret in the token request's body):
//   alice / alice-secret-0123456789   client_credentials, scopes "mcp trade"
//   bob   / bob-secret-0123456789     client_credentials, scope "mcp"
//   carol / carol-secret-0123456789   client_credentials, scope "trade" only (not "mcp")
//   browser (public, PKCE)            authorization_code, redirect http://127.0.0.1/callback;
//                                     the development login page accepts any login
//
// Test-only routes beside the provider, under /test/ (never part of a real deployment):
//   GET  /test/jwks-fetches   {"count": n}: how often the JWKS was fetched
//   POST /test/rotate         a new signing key is published first in the JWKS and signs every
//                             token from now on; the old one stays published: {"kid": ...}
//   POST /test/sign           {"header": {...}, "claims": {...}}: a JWS signed with the
//                             provider's current signing key (RS256), for tokens the provider
//                             will not issue itself (expired, not yet valid, unknown kid); with
//                             header.alg "HS256", an HMAC keyed with that key's *public* PEM
//                             (the algorithm-confusion attack)

import { createServer } from 'node:http';
import {
  createHmac, createPublicKey, generateKeyPairSync, randomBytes, sign,
} from 'node:crypto';

import Provider from 'oidc-provider';

const RESOURCE_SCOPES = 'mcp trade';
const ACCESS_TOKEN_TTL_SECS = 300;
const REDIRECT_URI = 'http://127.0.0.1/callback';

const portArgument = process.argv.indexOf('--port');
const port = portArgument > 0 ? Number(process.argv[portArgument + 1]) : 0;

/** A new RSA signing key as a private JWK. */
function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `k-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' };
}

const secretClient = (id, scope) => ({
  client_id: id,
  client_secret: `${id}-secret-0123456789`,
  token_endpoint_auth_method: 'client_secret_post',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope,
});

function configuration(keys) {
  return {
    clients: [
      secretClient('alice', RESOURCE_SCOPES),
      secretClient('bob', 'mcp'),
      secretClient('carol', 'trade'),
      {
        client_id: 'browser',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code'],
        response_types: ['code'],
        redirect_uris: [REDIRECT_URI],
        scope: `openid ${RESOURCE_SCOPES}`,
      },
    ],
    jwks: { keys },
    scopes: ['openid', 'mcp', 'trade'],
    cookies: { keys: [randomBytes(16).toString('hex')] },
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resourceIndicator) => ({
          scope: RESOURCE_SCOPES,
          audience: resourceIndicator,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ACCESS_TOKEN_TTL_SECS,
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    ttl: { ClientCredentials: ACCESS_TOKEN_TTL_SECS },
  };
}

const base64url = (value) => Buffer.from(value).toString('base64url');

/** A compact JWS signed with `key` (RS256), or HMACed with its public PEM (HS256). */
function signWith(key, header, claims) {
  const fullHeader = { alg: 'RS256', typ: 'at+jwt', kid: key.kid, ...header };
  const signingInput = `${base64url(JSON.stringify(fullHeader))}.${base64url(JSON.stringify(claims))}`;
  const signature = fullHeader.alg === 'HS256'
    ? createHmac('sha256', createPublicKey({ key, format: 'jwk' }).export({ type: 'spki', format: 'pem' }))
      .update(signingInput).digest()
    : sign('sha256', Buffer.from(signingInput), { key, format: 'jwk' });
  return `${signingInput}.${signature.toString('base64url')}`;
}

async function readJson(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
}

function reply(response, value) {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(JSON.stringify(value));
}

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  let keys = [newKey()];
  let provider = new Provider(issuer, configuration(keys));
  let jwksFetches = 0;

  server.on('request', async (request, response) => {
    try {
      const path = new URL(request.url, issuer).pathname;
      if (path === '/test/jwks-fetches') return reply(response, { count: jwksFetches });
      if (path === '/test/rotate' && request.method === 'POST') {
        keys = [newKey(), ...keys];
        provider = new Provider(issuer, configuration(keys));
        return reply(response, { kid: keys[0].kid });
      }
      if (path === '/test/sign' && request.method === 'POST') {
        const { header = {}, claims = {} } = await readJson(request);
        return reply(response, { token: signWith(keys[0], header, claims) });
      }
      if (path === '/jwks') jwksFetches += 1;
      return provider.callback()(request, response);
    } catch (error) {
      response.writeHead(500);
      response.end(String(error));
    }
  });

  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));

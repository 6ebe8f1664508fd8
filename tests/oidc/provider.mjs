// A real OpenID provider for the end-to-end identity tests: oidc-provider issuing JWT access
// tokens (client_credentials) for the resource "gatehouse", keys from a JWKS file.
//
//   node provider.mjs PORT KEYFILE        KEYFILE is created (one RS256 key) when missing
//
// Rotation test: stop it and start it again with another KEYFILE; Envoy keeps running.
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const [port, keyFile] = process.argv.slice(2);
if (!port || !keyFile) {
  console.error('usage: node provider.mjs PORT KEYFILE');
  process.exit(2);
}
if (!existsSync(keyFile)) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  writeFileSync(keyFile, JSON.stringify({ keys: [{ ...jwk, kid: randomUUID(), alg: 'RS256', use: 'sig' }] }));
}
const jwks = JSON.parse(readFileSync(keyFile, 'utf8'));
const issuer = `http://127.0.0.1:${port}`;

const clients = [
  { client_id: 'ci-bot', client_secret: 'ci-bot-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
  { client_id: 'sales-bot', client_secret: 'sales-bot-secret', grant_types: ['client_credentials'], redirect_uris: [], response_types: [] },
];
const groups = { 'ci-bot': ['eng'], 'sales-bot': ['sales'] };

const provider = new Provider(issuer, {
  clients,
  jwks,
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'https://gatehouse.local/',
      getResourceServerInfo: () => ({
        audience: 'gatehouse',
        scope: '',
        accessTokenTTL: 600,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  extraTokenClaims: (ctx, token) => ({ groups: groups[token.clientId] || [] }),
});
provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider ${issuer} kid=${jwks.keys[0].kid}`);
});

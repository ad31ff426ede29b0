// node oidc-provider as make bench's comparison: one client_credentials client, JWT access
// tokens signed with ALG (RS256 or ES256), no storage beyond the in-memory adapter (it writes
// nothing for a JWT client_credentials token). Usage: node server.js PORT ALG; prints "ready".
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const [port, alg] = [Number(process.argv[2]), process.argv[3] || 'ES256'];
const key = alg === 'RS256'
  ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const jwk = { ...key.export({ format: 'jwk' }), alg, use: 'sig', kid: `bench-${alg}` };
const resource = 'https://api.example.com';

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-bench-secret-bench-secret-bench',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'read',
    id_token_signed_response_alg: alg,
  }],
  jwks: { keys: [jwk] },
  scopes: ['openid', 'offline_access', 'read'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read',
        audience: resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 3600,
        jwt: { sign: { alg } },
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => console.log('ready'));

// openid-client v6 as a real relying party for the browser tests (tests/e2e/browser.py runs it)
// and the private_key_jwt tests (tests/e2e/test_private_key_jwt.py).
//
// One JSON request on stdin, one JSON answer on stdout; exit 0 on success, 2 when the library
// refused (the answer is then {"refused": {name, code, error, status, message}}). Every request
// names the provider and the client:
//   {"server": ISSUER, "client_id": ID, "client_secret": SECRET | null, "op": ..., ...}
// or, for a private_key_jwt client (RFC 7523 §2.2), its private key instead of a secret:
//   {..., "private_jwk": JWK (with "kid"), "assertion_alg": ALG | absent}
// The JWK is imported with WebCrypto (RSA as RSASSA-PKCS1-v1_5 SHA-256, EC as ECDSA on its
// curve, OKP as Ed25519) and handed to client.PrivateKeyJwt, which signs a fresh assertion per
// request (aud the issuer, a random jti, exp 60 s ahead) and sends client_id with it.
// `assertion_alg` rewrites the header's alg (openid-client names an Ed25519 key's alg
// "Ed25519", RFC 9864; "EdDSA" is the RFC 8037 name).
// With "dpop_jwk": a private JWK (with its public members), every token request, refresh and
// userinfo call goes through client.getDPoPHandle with that key pair (RFC 9449): the tokens come
// back bound to it, and the same key can be handed to the next run.
// Each run does discovery first (the issuer's /.well-known/openid-configuration); the local stack
// is http://, which openid-client refuses unless told otherwise (allowInsecureRequests).
//
// Ops:
//   authorize  {redirect_uri, scope, params?, par?}    -> {url, state, nonce, code_verifier}
//              buildAuthorizationUrl with PKCE S256, a random state and nonce; with par,
//              buildAuthorizationUrlWithPAR (the parameters pushed, RFC 9126).
//   callback   {callback_url, state, nonce, code_verifier} -> {tokens, claims}
//              authorizationCodeGrant with expectedState / expectedNonce / pkceCodeVerifier: it
//              checks state, iss (RFC 9207, discovery advertises it), the id_token and the nonce.
//   refresh    {refresh_token}                          -> {tokens, claims}
//   userinfo   {access_token, sub}                      -> {userinfo}
//   client_credentials {scope}                          -> {tokens}
//              clientCredentialsGrant.
//   introspect {token}                                  -> {introspection}
//              tokenIntrospection (RFC 7662) at the discovered introspection_endpoint.
//   revoke     {token}                                  -> {revoked: true}
//              tokenRevocation (RFC 7009) at the discovered revocation_endpoint.
import * as client from 'openid-client';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// WebCrypto parameters for a private JWK's key type.
function importParams(jwk) {
  switch (jwk.kty) {
    case 'RSA':
      return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    case 'EC':
      return { name: 'ECDSA', namedCurve: jwk.crv };
    case 'OKP':
      return { name: jwk.crv };
    default:
      throw new Error(`unsupported private JWK kty ${JSON.stringify(jwk.kty)}`);
  }
}

async function privateKeyJwt(req) {
  // Only the key material goes to importKey (a kid, use or alg member is not WebCrypto's).
  const { kid, use: _use, alg: _alg, key_ops: _ops, ...material } = req.private_jwk;
  const key = await crypto.subtle.importKey('jwk', material, importParams(material), false, ['sign']);
  const options = req.assertion_alg
    ? { [client.modifyAssertion]: (header) => { header.alg = req.assertion_alg; } }
    : undefined;
  return client.PrivateKeyJwt(kid ? { key, kid } : key, options);
}

// The DPoP options of an op (`{DPoP: handle}`), or none without a dpop_jwk.
async function dpopOptions(config, req) {
  if (!req.dpop_jwk) return {};
  const { kid: _kid, use: _use, alg: _alg, key_ops: _ops, ...material } = req.dpop_jwk;
  const params = importParams(material);
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicMaterial } = material;
  const privateKey = await crypto.subtle.importKey('jwk', material, params, false, ['sign']);
  // openid-client exports the public key into each proof's header: it must be extractable.
  const publicKey = await crypto.subtle.importKey('jwk', publicMaterial, params, true, ['verify']);
  return { DPoP: client.getDPoPHandle(config, { privateKey, publicKey }) };
}

async function configure(req) {
  const auth = req.private_jwk
    ? await privateKeyJwt(req)
    : req.client_secret ? client.ClientSecretBasic(req.client_secret) : client.None();
  return client.discovery(new URL(req.server), req.client_id, undefined, auth, {
    execute: [client.allowInsecureRequests],
  });
}

function tokensOf(response) {
  const claims = response.claims() ?? null;
  // The raw token response (the helpers are functions, JSON drops them).
  return { tokens: { ...response }, claims };
}

const ops = {
  async authorize(config, req) {
    const code_verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const parameters = {
      redirect_uri: req.redirect_uri,
      scope: req.scope,
      code_challenge: await client.calculatePKCECodeChallenge(code_verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...(req.params ?? {}),
    };
    // With "par": true the parameters are pushed first (RFC 9126) and the URL carries only
    // client_id and the request_uri; with a dpop_jwk too, the push carries a DPoP proof, which
    // binds the code to that key (RFC 9449 §10.1).
    const url = req.par
      ? await client.buildAuthorizationUrlWithPAR(config, parameters, await dpopOptions(config, req))
      : client.buildAuthorizationUrl(config, parameters);
    return { url: url.href, state, nonce, code_verifier };
  },

  async callback(config, req) {
    const response = await client.authorizationCodeGrant(config, new URL(req.callback_url), {
      pkceCodeVerifier: req.code_verifier,
      expectedState: req.state,
      expectedNonce: req.nonce,
      idTokenExpected: true,
    }, undefined, await dpopOptions(config, req));
    return tokensOf(response);
  },

  async refresh(config, req) {
    const options = await dpopOptions(config, req);
    return tokensOf(await client.refreshTokenGrant(config, req.refresh_token, undefined, options));
  },

  async userinfo(config, req) {
    const options = await dpopOptions(config, req);
    return { userinfo: await client.fetchUserInfo(config, req.access_token, req.sub, options) };
  },

  async client_credentials(config, req) {
    const options = await dpopOptions(config, req);
    const response = await client.clientCredentialsGrant(config, { scope: req.scope }, options);
    return { tokens: { ...response } };
  },

  async introspect(config, req) {
    return { introspection: { ...(await client.tokenIntrospection(config, req.token)) } };
  },

  async revoke(config, req) {
    await client.tokenRevocation(config, req.token);
    return { revoked: true };
  },
};

async function main() {
  const req = await readStdin();
  const op = ops[req.op];
  if (!op) throw new Error(`unknown op ${JSON.stringify(req.op)}`);
  const config = await configure(req);
  return op(config, req);
}

main().then(
  (answer) => {
    process.stdout.write(JSON.stringify(answer) + '\n');
  },
  (err) => {
    // openid-client wraps what oauth4webapi found (a missing iss, a wrong state) in `cause`.
    const refused = {
      name: err?.name,
      code: err?.code,
      error: err?.error ?? err?.cause?.error,
      status: err?.status ?? err?.cause?.status,
      message: String(err?.message ?? err),
      cause: err?.cause
        ? { code: err.cause.code, message: String(err.cause.message ?? err.cause) }
        : null,
    };
    process.stdout.write(JSON.stringify({ refused }) + '\n');
    process.exitCode = 2;
  },
);

// openid-client v6 as a real relying party for the browser tests (tests/e2e/browser.py runs it).
//
// One JSON request on stdin, one JSON answer on stdout; exit 0 on success, 2 when the library
// refused (the answer is then {"refused": {name, code, error, message}}). Every request names the
// provider and the client:
//   {"server": ISSUER, "client_id": ID, "client_secret": SECRET | null, "op": ..., ...}
// Each run does discovery first (the issuer's /.well-known/openid-configuration); the local stack
// is http://, which openid-client refuses unless told otherwise (allowInsecureRequests).
//
// Ops:
//   authorize  {redirect_uri, scope, params?}          -> {url, state, nonce, code_verifier}
//              buildAuthorizationUrl with PKCE S256, a random state and nonce.
//   callback   {callback_url, state, nonce, code_verifier} -> {tokens, claims}
//              authorizationCodeGrant with expectedState / expectedNonce / pkceCodeVerifier: it
//              checks state, iss (RFC 9207, discovery advertises it), the id_token and the nonce.
//   refresh    {refresh_token}                          -> {tokens, claims}
//   userinfo   {access_token, sub}                      -> {userinfo}
import * as client from 'openid-client';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function configure(req) {
  const auth = req.client_secret ? client.ClientSecretBasic(req.client_secret) : client.None();
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
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: req.redirect_uri,
      scope: req.scope,
      code_challenge: await client.calculatePKCECodeChallenge(code_verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...(req.params ?? {}),
    });
    return { url: url.href, state, nonce, code_verifier };
  },

  async callback(config, req) {
    const response = await client.authorizationCodeGrant(config, new URL(req.callback_url), {
      pkceCodeVerifier: req.code_verifier,
      expectedState: req.state,
      expectedNonce: req.nonce,
      idTokenExpected: true,
    });
    return tokensOf(response);
  },

  async refresh(config, req) {
    return tokensOf(await client.refreshTokenGrant(config, req.refresh_token));
  },

  async userinfo(config, req) {
    return { userinfo: await client.fetchUserInfo(config, req.access_token, req.sub) };
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
      message: String(err?.message ?? err),
      cause: err?.cause
        ? { code: err.cause.code, message: String(err.cause.message ?? err.cause) }
        : null,
    };
    process.stdout.write(JSON.stringify({ refused }) + '\n');
    process.exitCode = 2;
  },
);

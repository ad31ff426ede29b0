#!/usr/bin/env bash
# `make fuzz`: bounded coverage-guided fuzzing of the functions' request handling
# (cargo-fuzz + libFuzzer on the nightly toolchain). FUZZ_SECONDS bounds the run (default 120).
# Exits non-zero when libFuzzer finds a crash (the input is kept in fuzz/artifacts/).
# The corpus (fuzz/corpus, gitignored) grows across runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT/fuzz"
rustup run nightly rustc --version >/dev/null 2>&1 || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
seconds="${FUZZ_SECONDS:-120}"
mkdir -p "$ROOT/.local" corpus/token_request corpus/tokeninfo_request corpus/authorize_request
: >"$ROOT/.local/fuzz.log"
# Seeds: the request shapes of the seeds. token_request: two selector bytes (content type,
# path), an Authorization line, the body.
printf '\x00\x00Basic YXBwOlZkMm1RMW84Y1g0eVo3Yk4wYVI1dFUzd0U2aEo5a0wycFM0Zkc4ZEExcUM=\ngrant_type=client_credentials&scope=read' >corpus/token_request/cc
printf '\x01\x00Basic YWxpY2U6cHc=\n{"grant_type":"password","client_id":"app","client_secret":"s","redirect_uri":""}' >corpus/token_request/empowerid
printf '\x00\x00\ngrant_type=refresh_token&refresh_token=AAAAAAAAAAAAAAAAAAAAAA.BBBB&client_id=a&client_secret=b' >corpus/token_request/refresh
# @ASSERTION@ becomes a valid private_key_jwt assertion of client `signer`.
printf '\x00\x00\ngrant_type=client_credentials&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer&client_assertion=@ASSERTION@' >corpus/token_request/private_key_jwt
printf '\x01\x00\n{"grant_type":"client_credentials","client_id":"signer","client_assertion_type":"urn:ietf:params:oauth:client-assertion-type:jwt-bearer","client_assertion":"@ASSERTION@"}' >corpus/token_request/private_key_jwt_json
# A tab after the Authorization value starts a DPoP header; @PROOF@ becomes a valid proof.
printf '\x00\x00Basic YXBwOlZkMm1RMW84Y1g0eVo3Yk4wYVI1dFUzd0U2aEo5a0wycFM0Zkc4ZEExcUM=\t@PROOF@\ngrant_type=client_credentials&scope=read' >corpus/token_request/dpop
printf '\x00\x01Basic YXBwOlZkMm1RMW84Y1g0eVo3Yk4wYVI1dFUzd0U2aEo5a0wycFM0Zkc4ZEExcUM=\ntoken=eyJhbGciOiJFUzI1NiJ9.e30.sig&token_type_hint=access_token' >corpus/token_request/revoke
# A pushed authorization request (selector 3: /oauth/v2/par) of client app.
printf '\x00\x03Basic YXBwOlZkMm1RMW84Y1g0eVo3Yk4wYVI1dFUzd0U2aEo5a0wycFM0Zkc4ZEExcUM=\nresponse_type=code&redirect_uri=https%%3A%%2F%%2Fapp.example.com%%2Fcb&scope=read&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256' >corpus/token_request/par
# tokeninfo_request: one selector byte (route), an Authorization line, the body or query;
# @TOKEN@ becomes a valid access token.
printf '\x00Basic YXBwOlZkMm1RMW84Y1g0eVo3Yk4wYVI1dFUzd0U2aEo5a0wycFM0Zkc4ZEExcUM=\ntoken=@TOKEN@' >corpus/tokeninfo_request/introspect
printf '\x01Basic YXBwOlZkMm1RMW84Y1g0eVo3Yk4wYVI1dFUzd0U2aEo5a0wycFM0Zkc4ZEExcUM=\n{"token":"@TOKEN@","token_type_hint":"access_token"}' >corpus/tokeninfo_request/introspect_json
printf '\x02\naccess_token=@TOKEN@' >corpus/tokeninfo_request/tokeninfo_get
printf '\x03Bearer @TOKEN@\n' >corpus/tokeninfo_request/userinfo
# authorize_request: one selector byte (route), a Cookie line, the body or query.
printf '\x00\nresponse_type=code&client_id=web&redirect_uri=https%%3A%%2F%%2Fapp.example.com%%2Fcb&scope=openid&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256' >corpus/authorize_request/authorize
printf '\x01\nresponse_type=code&client_id=web&redirect_uri=https%%3A%%2F%%2Fapp.example.com%%2Fcb&prompt=none&response_mode=form_post&state=s' >corpus/authorize_request/authorize_post
printf '\x03__Host-oauth-session=AAAA\ntransaction=t&csrf_token=c&username=alice&password=pw' >corpus/authorize_request/login
printf '\x04__Host-oauth-session=AAAA\ntransaction=t&csrf_token=c&decision=allow' >corpus/authorize_request/consent
printf '\x05__Host-oauth-session=AAAA\nclient_id=web&post_logout_redirect_uri=https%%3A%%2F%%2Fapp.example.com%%2Fbye&state=s' >corpus/authorize_request/logout
printf '\x06__Host-oauth-session=AAAA\nid_token_hint=eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.e30.sig&csrf_token=x' >corpus/authorize_request/logout_post
for target in token_request tokeninfo_request authorize_request; do
    echo "==> $target: ${seconds}s" | tee -a "$ROOT/.local/fuzz.log"
    cargo +nightly fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=20000 -print_final_stats=1 2>&1 |
        tee -a "$ROOT/.local/fuzz.log" | grep -E '^(==|Done|stat::|#[0-9]+.*DONE)|panicked|ERROR|SUMMARY'
done

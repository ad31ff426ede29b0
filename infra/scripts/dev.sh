#!/usr/bin/env bash
# `make dev`: the whole local stack on this machine, no Docker, no AWS account.
#   venv (moto, cargo-lambda) -> cargo build -> moto on 127.0.0.1:$MOTO_PORT ->
#   oauthctl init -> demo client + user -> .local/dev.env ->
#   cargo lambda watch on 127.0.0.1:$DEV_PORT (hot reload) -> curl examples.
# Ctrl-C stops everything this script started.
#
# Knobs: DEV_PORT (9000), MOTO_PORT (4566), DEV_CALLBACK_PORT (9001: the demo app's
#        redirect URI, infra/scripts/dev-callback.py), DEV_TABLE_NAME (oauth-dev),
#        DEV_SECRET_ID (oauth-dev-keys), ACCESS_TOKEN_ALG (RS256), RUST_LOG (info).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

DEV_PORT="${DEV_PORT:-9000}"
MOTO_PORT="${MOTO_PORT:-4566}"
CALLBACK_PORT="${DEV_CALLBACK_PORT:-9001}"
TABLE="${DEV_TABLE_NAME:-oauth-dev}"
SECRET="${DEV_SECRET_ID:-oauth-dev-keys}"
ISSUER="http://127.0.0.1:$DEV_PORT/oauth"
LOCAL="${DEV_LOCAL_DIR:-$ROOT/.local}"
DEV_ENV="$LOCAL/dev.env"
FN_ENV="$LOCAL/dev.functions.env"
WATCH_LOG="$LOCAL/watch-$DEV_PORT.log"
PY="$ROOT/.venv/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

WATCH_PID=""
CALLBACK_PID=""
MOTO_STARTED=""
# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    trap - INT TERM EXIT
    echo >&2
    if [[ -n "$WATCH_PID" ]] && kill -0 "$WATCH_PID" 2>/dev/null; then
        say "stopping cargo lambda watch"
        # SIGTERM to cargo-lambda stops the function processes it started (they run
        # in sessions of their own, so signal the watcher, not just a group).
        kill -TERM -- "-$WATCH_PID" 2>/dev/null || kill -TERM "$WATCH_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$WATCH_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$WATCH_PID" 2>/dev/null || true
    fi
    if [[ -n "$CALLBACK_PID" ]]; then kill "$CALLBACK_PID" 2>/dev/null || true; fi
    if [[ -n "$MOTO_STARTED" ]]; then
        say "stopping moto"
        "$ROOT/infra/scripts/moto.sh" stop "$MOTO_PORT" || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. tools ---------------------------------------------------------------------
say "python venv (.venv: moto, cargo-lambda)"
"$ROOT/infra/scripts/venv.sh"
export PATH="$ROOT/.venv/bin:$PATH"

for port in "$DEV_PORT" "$CALLBACK_PORT"; do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null; then
        die "port $port is busy (another make dev?); set DEV_PORT / DEV_CALLBACK_PORT"
    fi
done

say "cargo build --workspace"
cargo build --workspace

# --- 2. emulator ------------------------------------------------------------------
# moto keeps everything in memory: start a fresh one so the demo data below is the
# only data (a moto left over from an earlier run on this port is restarted).
"$ROOT/infra/scripts/moto.sh" stop "$MOTO_PORT"
say "moto_server on 127.0.0.1:$MOTO_PORT"
"$ROOT/infra/scripts/moto.sh" start "$MOTO_PORT"
MOTO_STARTED=1

# --- 3. env for oauthctl and the functions -----------------------------------------
mkdir -p "$LOCAL"
cat >"$DEV_ENV" <<EOF
# Written by infra/scripts/dev.sh: \`source .local/dev.env\` to run oauthctl against
# the local stack, e.g. \`cargo run -p oauthctl -- client list\`.
export TABLE_NAME=$TABLE
export SIGNING_KEYS_SECRET_ID=$SECRET
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
export AWS_EC2_METADATA_DISABLED=true
export ISSUER=$ISSUER
EOF
# shellcheck disable=SC1090
source "$DEV_ENV"

{
    echo "TABLE_NAME=$TABLE"
    echo "SIGNING_KEYS_SECRET_ID=$SECRET"
    echo "AWS_REGION=us-east-1"
    echo "AWS_ACCESS_KEY_ID=testing"
    echo "AWS_SECRET_ACCESS_KEY=testing"
    echo "AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT"
    echo "AWS_EC2_METADATA_DISABLED=true"
    echo "ISSUER=$ISSUER"
    echo "RUST_LOG=${RUST_LOG:-info}"
    if [[ -n "${ACCESS_TOKEN_ALG:-}" ]]; then echo "ACCESS_TOKEN_ALG=$ACCESS_TOKEN_ALG"; fi
} >"$FN_ENV"

OAUTHCTL="${CARGO_TARGET_DIR:-$ROOT/target}/debug/oauthctl"
[[ -x "$OAUTHCTL" ]] || die "$OAUTHCTL missing after cargo build"
json_field() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# --- 4. table, keys, demo data ------------------------------------------------------
say "oauthctl init"
"$OAUTHCTL" init ${ACCESS_TOKEN_ALG:+--alg "$ACCESS_TOKEN_ALG"} >/dev/null

say "demo client + user"
client_json="$("$OAUTHCTL" client create --name demo \
    --grant client_credentials --grant password --grant refresh_token \
    --scope "openid profile email read write" --default-scope read)"
CLIENT_ID="$(json_field client_id <<<"$client_json")"
CLIENT_SECRET="$(json_field client_secret <<<"$client_json")"
DEMO_USER="alice@example.com@carbon.super"
# DEMO_PASSWORD may be given; random otherwise (token_urlsafe may start with "-").
DEMO_PASSWORD="${DEMO_PASSWORD:-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')}"
"$OAUTHCTL" user create --username "$DEMO_USER" --password="$DEMO_PASSWORD" \
    --claim email=alice@example.com --claim email_verified=true --claim "name=Alice Example" >/dev/null

# A public browser client (PKCE, no secret) whose redirect URI is the demo app below.
CALLBACK="http://127.0.0.1:$CALLBACK_PORT"
web_json="$("$OAUTHCTL" client create --name "Demo app" --public \
    --grant authorization_code --grant refresh_token --scope "openid profile email" \
    --redirect-uri "$CALLBACK/callback" --post-logout-redirect-uri "$CALLBACK/signed-out")"
WEB_CLIENT_ID="$(json_field client_id <<<"$web_json")"
read -r VERIFIER CHALLENGE < <("$PY" -c '
import base64, hashlib, secrets
v = secrets.token_urlsafe(48)
print(v, base64.urlsafe_b64encode(hashlib.sha256(v.encode()).digest()).rstrip(b"=").decode())')
SIGN_IN_URL="http://127.0.0.1:$DEV_PORT/oauth/v2/authorize?response_type=code&client_id=$WEB_CLIENT_ID&redirect_uri=$CALLBACK/callback&scope=openid%20profile%20email&state=demo&nonce=demo-$RANDOM&code_challenge=$CHALLENGE&code_challenge_method=S256"

cat >>"$DEV_ENV" <<EOF
# demo data (moto is in memory: valid until make dev stops)
export DEMO_CLIENT_ID='$CLIENT_ID'
export DEMO_CLIENT_SECRET='$CLIENT_SECRET'
export DEMO_USERNAME='$DEMO_USER'
export DEMO_PASSWORD='$DEMO_PASSWORD'
export DEMO_WEB_CLIENT_ID='$WEB_CLIENT_ID'
export DEMO_SIGN_IN_URL='$SIGN_IN_URL'
EOF

"$PY" "$ROOT/infra/scripts/dev-callback.py" "$CALLBACK_PORT" \
    "http://127.0.0.1:$DEV_PORT/oauth/v2/token" "$WEB_CLIENT_ID" "$VERIFIER" &
CALLBACK_PID=$!

# --- 5. functions -----------------------------------------------------------------
say "cargo lambda watch on 127.0.0.1:$DEV_PORT (log: ${WATCH_LOG#"$ROOT"/})"
# --disable-cors: send the functions' own CORS headers, as API Gateway would.
setsid cargo lambda watch -A 127.0.0.1 -P "$DEV_PORT" --disable-cors \
    --env-file "$FN_ENV" >"$WATCH_LOG" 2>&1 </dev/null &
WATCH_PID=$!

# Ready when each function answers (the first request to a function starts it).
deadline=$((SECONDS + 300))
for probe in "GET /oauth/v2/jwks" "POST /oauth/v2/token" "GET /oauth/v2/tokeninfo" "GET /oauth/v2/authorize"; do
    until curl -s -o /dev/null --max-time 120 -X "${probe%% *}" "http://127.0.0.1:$DEV_PORT${probe#* }"; do
        kill -0 "$WATCH_PID" 2>/dev/null || { tail -n 30 "$WATCH_LOG" >&2; die "cargo lambda watch exited"; }
        ((SECONDS < deadline)) || { tail -n 30 "$WATCH_LOG" >&2; die "functions not ready after 300s"; }
        sleep 0.5
    done
done

B="http://127.0.0.1:$DEV_PORT"
cat <<EOF

Local stack is up.
  issuer      $ISSUER
  functions   $B   (log: ${WATCH_LOG#"$ROOT"/}; edits to the code reload them)
  emulator    http://127.0.0.1:$MOTO_PORT (moto; log: .local/moto-$MOTO_PORT.log)
  env         source .local/dev.env && cargo run -p oauthctl -- client list
  demo client $CLIENT_ID / $CLIENT_SECRET
  demo user   $DEMO_USER / $DEMO_PASSWORD

Sign in with a browser (authorization code + PKCE; the demo app on $CALLBACK exchanges the
code and shows the tokens and the curl command that does it by hand):
  $SIGN_IN_URL
  sign out:   http://127.0.0.1:$DEV_PORT/oauth/v2/logout?client_id=$WEB_CLIENT_ID&post_logout_redirect_uri=$CALLBACK/signed-out

Try (paste as they are):
  # client_credentials, client_secret_basic
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=client_credentials -d scope=read $B/oauth/v2/token
  # password, EmpowerID shape: user in Basic, client in a JSON body
  curl -s -u '$DEMO_USER:$DEMO_PASSWORD' -H 'Content-Type: application/json' -d '{"grant_type":"password","client_id":"$CLIENT_ID","client_secret":"$CLIENT_SECRET","redirect_uri":""}' $B/oauth/v2/token
  # password, EmpowerID shape, form body
  curl -s -u '$DEMO_USER:$DEMO_PASSWORD' -d 'grant_type=password&client_id=$CLIENT_ID&client_secret=$CLIENT_SECRET&redirect_uri=' $B/oauth/v2/token
  # password, WSO2 shape (username@email@org is just a username)
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=password --data-urlencode 'username=$DEMO_USER' --data-urlencode 'password=$DEMO_PASSWORD' -d 'scope=openid profile read' $B/oauth2/token
  # refresh: take refresh_token from a password answer
  RT=\$(curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=password --data-urlencode 'username=$DEMO_USER' --data-urlencode 'password=$DEMO_PASSWORD' $B/oauth/v2/token | $PY -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])')
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=refresh_token -d refresh_token=\$RT $B/oauth/v2/token
  # introspection, userinfo, revocation, discovery
  AT=\$(curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=password --data-urlencode 'username=$DEMO_USER' --data-urlencode 'password=$DEMO_PASSWORD' -d 'scope=openid profile email' $B/oauth/v2/token | $PY -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d token=\$AT $B/oauth/v2/tokeninfo
  curl -s -H "Authorization: Bearer \$AT" $B/oauth/v2/userinfo
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d token=\$AT $B/oauth/v2/revoke -w '%{http_code}\\n'
  curl -s $B/oauth/.well-known/openid-configuration
  curl -s $B/oauth/v2/jwks

Ctrl-C stops everything.
EOF

wait "$WATCH_PID" || true
WATCH_PID=""
tail -n 30 "$WATCH_LOG" >&2
die "cargo lambda watch stopped"

#!/usr/bin/env bash
# `make bench`: every SPEC §10 figure in one run; prints a table, writes bench-results.json.
#   1. criterion (in-process, shared/benches/token.rs): warm token CPU per alg, bare signature,
#      password grant, introspection, equal-time failure paths, the login page, the code
#      exchange and the login form's POST.
#   2. cold start of the x86_64 release token and authorize binaries behind a minimal Lambda
#      Runtime API + moto.
#   3. AWS calls per request type (counting proxy between the binaries and moto).
#   4. warm whole-process CPU per request of every route (one instance, sequential), latency
#      at each Lambda memory size (cgroup CPU quota, needs root), and throughput on loopback
#      (wrk -> runtime API front end -> N instances -> moto).
#   5. arm64 release zips (cargo lambda build), unless BENCH_SKIP_ARM64=1.
#
# Knobs: BENCH_OUT (bench-results.json), BENCH_MOTO_PORT (4599), BENCH_ALG (RS256, the default
#        ACCESS_TOKEN_ALG), BENCH_COLD_REPEAT (5), BENCH_LOAD_SECONDS (10),
#        BENCH_CONCURRENCY (4), BENCH_WARM_N (400 requests per warm case), BENCH_MEMORY_N
#        (300 sequential requests per memory size and alg), BENCH_SKIP_ARM64,
#        BENCH_SKIP_CRITERION, BENCH_SKIP_LOCAL, BENCH_LOCAL_WHAT (all, or one of coldstart,
#        calls, warm, memory, throughput), BENCH_WARM_ONLY (the warm cases whose name has
#        this), BENCH_NO_BUILD (use the existing release
#        function binaries and debug oauthctl), BENCH_BIN_DIR (function binaries from there,
#        e.g. an earlier commit's, for a before/after), BENCH_COMPARE_BINARY (another token
#        build, interleaved with this one in the warm section: an A/B in one run),
#        BENCH_SKIP_OIDC_PROVIDER (no node oidc-provider comparison), BENCH_CLOCK=wall (criterion on wall
#        time instead of process CPU time), BENCH_CRITERION_ARGS (default: --warm-up-time 1
#        --measurement-time 3).
# Builds run one after another (never in parallel), nothing is cleaned.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH"

OUT="${BENCH_OUT:-$ROOT/bench-results.json}"
WORK="$ROOT/.local/bench"
MOTO_PORT="${BENCH_MOTO_PORT:-4599}"
ALG="${BENCH_ALG:-RS256}"
TABLE="bench-oauth"
SECRET_ID="bench-oauth-keys"
PY="$ROOT/.venv/bin/python"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

mkdir -p "$WORK"
# Only this run's figures reach the report.
rm -f "$WORK"/{local,x86,zips}.json
[[ -n "${BENCH_SKIP_CRITERION:-}" ]] || rm -rf "$WORK/criterion" "$WORK/criterion-meta.json"
MOTO_STARTED=""
cleanup() {
    if [[ -n "$MOTO_STARTED" ]]; then
        "$ROOT/infra/scripts/moto.sh" stop "$MOTO_PORT" || true
    fi
}
trap cleanup EXIT

say "python venv (moto, cargo-lambda)"
"$ROOT/infra/scripts/venv.sh"

if ! command -v wrk >/dev/null 2>&1; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        say "installing wrk (Debian package) for the throughput run"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 ||
            echo "bench: wrk not installed; the Python load generator will be used" >&2
    fi
fi

# --- 1. criterion ----------------------------------------------------------------------
CRIT_DIR="$WORK/criterion"
if [[ -z "${BENCH_SKIP_CRITERION:-}" ]]; then
    say "criterion: cargo bench -p shared --bench token"
    # shellcheck disable=SC2086  # word splitting of the argument list is intended
    CRITERION_HOME="$CRIT_DIR" BENCH_META="$WORK/criterion-meta.json" \
        cargo bench -p shared --bench token -- \
        ${BENCH_CRITERION_ARGS:---warm-up-time 1 --measurement-time 3} 2>&1 |
        tee "$WORK/criterion.log" | grep -E 'time:|^[a-z_]+/[A-Za-z0-9_]+$' >&2 || true
    [[ "${PIPESTATUS[0]}" == 0 ]] || die "cargo bench failed (log: $WORK/criterion.log)"
fi

# --- 2-4. local stack ------------------------------------------------------------------
if [[ -z "${BENCH_SKIP_LOCAL:-}" ]]; then
    say "cargo build --release -p token -p authorize -p tokeninfo -p discovery (x86_64), the round-trip floor; cargo build -p oauthctl"
    if [[ -z "${BENCH_NO_BUILD:-}" ]]; then
        cargo build --release -p token -p authorize -p tokeninfo -p discovery
        cargo build --release -p shared --example round_trip_floor
        cargo build -p oauthctl
    fi
    BIN_DIR="${BENCH_BIN_DIR:-$TARGET/release}"
    BIN="$BIN_DIR/token"
    AUTHORIZE_BIN="$BIN_DIR/authorize"
    TOKENINFO_BIN="$BIN_DIR/tokeninfo"
    DISCOVERY_BIN="$BIN_DIR/discovery"
    FLOOR_ARGS=()
    [[ -x "$TARGET/release/examples/round_trip_floor" ]] &&
        FLOOR_ARGS=(--floor-binary "$TARGET/release/examples/round_trip_floor")
    # BENCH_COMPARE_BINARY: another token build, measured interleaved with this one (A/B).
    [[ -n "${BENCH_COMPARE_BINARY:-}" ]] && FLOOR_ARGS+=(--compare-binary "$BENCH_COMPARE_BINARY")
    # node oidc-provider, the comparison the per-token targets were set against (npm registry;
    # BENCH_SKIP_OIDC_PROVIDER=1 or no node skips it).
    if [[ -z "${BENCH_SKIP_OIDC_PROVIDER:-}" ]] && command -v npm >/dev/null; then
        if (cd "$ROOT/bench/oidc-provider" && npm ci --no-audit --no-fund --silent); then
            FLOOR_ARGS+=(--oidc-provider-dir "$ROOT/bench/oidc-provider")
        else
            say "npm ci in bench/oidc-provider failed: no oidc-provider comparison"
        fi
    fi
    OAUTHCTL="$TARGET/debug/oauthctl"

    say "moto_server on 127.0.0.1:$MOTO_PORT (fresh)"
    "$ROOT/infra/scripts/moto.sh" stop "$MOTO_PORT"
    "$ROOT/infra/scripts/moto.sh" start "$MOTO_PORT"
    MOTO_STARTED=1
    MOTO_PID="$(cat "$ROOT/.local/moto-$MOTO_PORT.pid")"

    export TABLE_NAME="$TABLE" SIGNING_KEYS_SECRET_ID="$SECRET_ID" AWS_REGION=us-east-1 \
        AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true \
        AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
    field() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
    "$OAUTHCTL" init >/dev/null
    cc_json="$("$OAUTHCTL" client create --name bench-cc --grant client_credentials --scope read)"
    pw_json="$("$OAUTHCTL" client create --name bench-pw --grant password --grant refresh_token --scope read)"
    # A confidential browser client (PKCE required by default) for the authorize function.
    web_json="$("$OAUTHCTL" client create --name bench-web --grant authorization_code \
        --grant refresh_token --scope "openid email" --redirect-uri https://app.example.com/cb)"
    # A private_key_jwt client: its ES256 key pair made here, the public half registered.
    "$PY" - "$WORK/pkj-key.pem" "$WORK/pkj-jwks.json" <<'PYEOF'
import json, sys
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = ec.generate_private_key(ec.SECP256R1())
open(sys.argv[1], "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
json.dump({"keys": [dict(jwk, kid="bench-1", use="sig", alg="ES256")]}, open(sys.argv[2], "w"))
PYEOF
    pkj_json="$("$OAUTHCTL" client create --name bench-pkj --grant client_credentials --scope read \
        --auth-method private_key_jwt --jwks "$WORK/pkj-jwks.json")"
    BENCH_PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')"
    "$OAUTHCTL" user create --username bench-user --password="$BENCH_PASSWORD" >/dev/null

    say "cold start, AWS calls per request, warm whole-process CPU, throughput (ACCESS_TOKEN_ALG=$ALG)"
    : >"$WORK/function.log"
    "$PY" "$ROOT/bench/local_stack.py" "${BENCH_LOCAL_WHAT:-all}" ${BENCH_WARM_ONLY:+--warm-only "$BENCH_WARM_ONLY"} \
        --binary "$BIN" --authorize-binary "$AUTHORIZE_BIN" \
        --tokeninfo-binary "$TOKENINFO_BIN" --discovery-binary "$DISCOVERY_BIN" \
        "${FLOOR_ARGS[@]}" \
        --warm-n "${BENCH_WARM_N:-400}" --memory-n "${BENCH_MEMORY_N:-300}" --work "$WORK" --moto-port "$MOTO_PORT" --moto-pid "$MOTO_PID" \
        --table "$TABLE" --secret-id "$SECRET_ID" --alg "$ALG" \
        --cc-client-id="$(field client_id <<<"$cc_json")" \
        --cc-client-secret="$(field client_secret <<<"$cc_json")" \
        --pkj-client-id="$(field client_id <<<"$pkj_json")" --pkj-key "$WORK/pkj-key.pem" \
        --pw-client-id="$(field client_id <<<"$pw_json")" \
        --pw-client-secret="$(field client_secret <<<"$pw_json")" \
        --web-client-id="$(field client_id <<<"$web_json")" \
        --web-client-secret="$(field client_secret <<<"$web_json")" \
        --web-redirect-uri https://app.example.com/cb \
        --username bench-user --password="$BENCH_PASSWORD" \
        --repeat "${BENCH_COLD_REPEAT:-5}" --seconds "${BENCH_LOAD_SECONDS:-10}" \
        --concurrency "${BENCH_CONCURRENCY:-4}" --function-log "$WORK/function.log" \
        >"$WORK/local.json"
    # The release binaries' sizes on x86_64 (the arm64 zips below are what ships).
    stat -c '{"x86_64_release_token_bytes": %s, ' "$BIN" >"$WORK/x86.json"
    stat -c '"x86_64_release_authorize_bytes": %s}' "$AUTHORIZE_BIN" >>"$WORK/x86.json"
    "$ROOT/infra/scripts/moto.sh" stop "$MOTO_PORT"
    MOTO_STARTED=""
fi

# --- 5. arm64 zips ---------------------------------------------------------------------
if [[ -z "${BENCH_SKIP_ARM64:-}" ]]; then
    say "cargo lambda build --release --arm64 --output-format zip (zig; several minutes)"
    cargo lambda build --release --arm64 --output-format zip 2>&1 | tail -n 3 >&2
    "$PY" - "$TARGET/lambda" >"$WORK/zips.json" <<'EOF'
import json, os, sys, zipfile
out = {}
functions = set(os.listdir("functions"))  # oauthctl is a CLI, not a function
for name in sorted(os.listdir(sys.argv[1])):
    if name not in functions:
        continue
    z = os.path.join(sys.argv[1], name, "bootstrap.zip")
    if os.path.isfile(z):
        with zipfile.ZipFile(z) as f:
            raw = sum(i.file_size for i in f.infolist())
        out[name] = {"zip_bytes": os.path.getsize(z), "bootstrap_bytes": raw,
                     "mtime": int(os.path.getmtime(z))}
json.dump(out, sys.stdout)
EOF
else
    rm -f "$WORK/zips.json"
fi
[[ -d "$WORK/criterion" ]] || rm -f "$WORK/criterion-meta.json"

say "report"
"$PY" "$ROOT/bench/report.py" --work "$WORK" --out "$OUT"

#!/usr/bin/env bash
# `make sam-local`: the real template under `sam local start-api` — each function in a Lambda
# container (Docker) running its real binary, against moto. The `sam local` twin of `make dev`.
#
#   infra/scripts/sam-local.sh               serve on 127.0.0.1:$SAM_LOCAL_PORT and print curl
#                                            examples; Ctrl-C stops everything
#   infra/scripts/sam-local.sh --run CMD...  the same stack on free ports, then CMD with the
#                                            OAUTH_E2E_* variables of the e2e harness's sam-local
#                                            mode set (tests/e2e/conftest.py); stops everything
#                                            and exits with CMD's status (`make test` uses this)
#
# On a fresh machine, each step only where not done yet:
#   apt: docker.io containerd runc iptables debootstrap
#   .venv (moto, cargo-lambda) and .venv-sam (aws-sam-cli, pinned in check-template.sh)
#   a private dockerd: data, exec root, pid file and socket under .local/sam/docker, its own
#     bridge (oauthsam0, SAM_LOCAL_BRIDGE_CIDR), --iptables=false --ip-forward=false: it adds no
#     iptables rule and changes no sysctl; DOCKER_HOST points SAM at it
#   the base image public.ecr.aws/lambda/provided:al2023-x86_64 (nothing is pulled): a Debian
#     bookworm minbase rootfs with ca-certificates (debootstrap; the tarball is cached in
#     .local/sam/base), `docker import`ed; SAM derives its …-rapid-x86_64 image from it
#   moto bound to the bridge's address (reachable from the containers and from this host,
#     traffic stays on the bridge)
#   oauthctl init + a demo client and user (as make dev)
#   SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 SAM_BUILD_MODE=debug sam build, Architecture=x86_64
#     (cargo target dir target/sam-local, build dir .local/sam/build: `make deploy`'s .aws-sam
#     and the other cargo builds are left alone)
#   sam local start-api --skip-pull-image --warm-containers EAGER, in a clean environment
#     (dummy credentials; STS refused at once so start-up does not wait on AWS)
# Everything started is stopped by pid on exit, failure or Ctrl-C: SAM, every container of
# the private engine, dockerd (and its containerd), the bridge, moto.
#
# Needs root (apt, dockerd, debootstrap) and an x86_64 machine.
# Knobs: SAM_LOCAL_PORT (3000), SAM_LOCAL_MOTO_PORT (4566; moto listens on the bridge address,
#        so make dev's 127.0.0.1:4566 is not in the way), SAM_LOCAL_BRIDGE_CIDR (172.30.253.1/24),
#        SAM_LOCAL_DEBIAN_MIRROR (first Debian URI of the apt sources), SAM_LOCAL_READY_TIMEOUT
#        (300 s), ACCESS_TOKEN_ALG (RS256).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

MODE=serve
if [[ "${1:-}" == --run ]]; then
    MODE=run
    shift
    [[ "${1:-}" == -- ]] && shift
    (($#)) || { echo "usage: $0 [--run CMD ...]" >&2; exit 2; }
elif (($#)); then
    echo "usage: $0 [--run CMD ...]" >&2
    exit 2
fi

LOCAL="$ROOT/.local/sam"
DOCKER_DIR="$LOCAL/docker"
DATA_ROOT="$DOCKER_DIR/data"
EXEC_ROOT="$DOCKER_DIR/run"
DOCKERD_PIDFILE="$EXEC_ROOT/dockerd.pid"
SOCK="$EXEC_ROOT/docker.sock"
BRIDGE=oauthsam0
BRIDGE_CIDR="${SAM_LOCAL_BRIDGE_CIDR:-172.30.253.1/24}"
BASE_DIR="$LOCAL/base"
ROOTFS_TAR="$BASE_DIR/bookworm-minbase-ca.tar"
BASE_TAG="public.ecr.aws/lambda/provided:al2023-x86_64"
RAPID_TAG="public.ecr.aws/lambda/provided:al2023-rapid-x86_64"
BUILD_DIR="$LOCAL/build"
SAM_PIDFILE="$LOCAL/start-api.pid"
MOTO_ADDR_FILE="$LOCAL/moto.addr"
TABLE=oauth-sam
SECRET=oauth-sam-keys
REGION=us-east-1
PY="$ROOT/.venv/bin/python"
SAM="$ROOT/.venv-sam/bin/sam"
READY_TIMEOUT="${SAM_LOCAL_READY_TIMEOUT:-300}"

now_ms() { date +%s%3N; }
T0="$(now_ms)"
elapsed() { echo "$(( ($(now_ms) - T0) / 1000 )) s"; }
say() { printf '\033[1m==> [%4ss] %s\033[0m\n' "$(( ($(now_ms) - T0) / 1000 ))" "$*" >&2; }
die() { printf 'sam-local.sh: %s\n' "$*" >&2; exit 1; }
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

[[ "$(id -u)" == 0 ]] || die "needs root (apt-get, dockerd, debootstrap)"
[[ "$(uname -m)" == x86_64 ]] || die "runs x86_64 functions in x86_64 containers: needs an x86_64 machine"

mkdir -p "$LOCAL"
# One stack at a time: it owns the private engine and everything running on it.
# (fd 9 holds the lock; the long-lived processes below get `9>&-` so that it dies with this
# script, and a rerun after a kill -9 can clean up what that run left.)
exec 9>"$LOCAL/lock"
flock -n 9 || die "another sam-local.sh holds $LOCAL/lock (a make sam-local still running?)"

SAM_PID=""
DOCKERD_PID=""
CONTAINERD_PID=""
BRIDGE_CREATED=""
MOTO_PORT=""
MOTO_STARTED=""
BRIDGE_IP=""
# containerd 1.6 puts its shims' sockets in /run/containerd/s whatever its state dir: a marker
# remembers (across a killed run too) that this script made that directory.
RUN_CONTAINERD_MARK="$LOCAL/run-containerd.created"

docker_() { DOCKER_HOST="unix://$SOCK" docker "$@"; }

# Processes whose command line names our exec root (containerd shims left by a killed engine).
engine_strays() {
    local d cmd
    for d in /proc/[0-9]*; do
        cmd="$( { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null)" || continue
        [[ "$cmd" == *"$EXEC_ROOT"* ]] && echo "${d#/proc/}"
    done
    return 0
}

stop_pid() {  # pid, seconds before SIGKILL
    local pid="$1" grace="$2" i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do alive "$pid" || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

umount_under() {  # every mount below a directory, deepest first
    local dir="$1" m
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
}

stop_engine() {
    if alive "$DOCKERD_PID"; then
        # Every container of the private engine is ours (it serves nothing else); by id.
        local ids
        ids="$(docker_ ps -aq 2>/dev/null || true)"
        if [[ -n "$ids" ]]; then
            say "removing containers: $(echo $ids)"
            # shellcheck disable=SC2086
            docker_ rm -f $ids >/dev/null 2>&1 || true
        fi
        say "stopping dockerd (pid $DOCKERD_PID)"
        stop_pid "$DOCKERD_PID" 30
    fi
    stop_pid "$CONTAINERD_PID" 10
    local pid
    for pid in $(engine_strays); do stop_pid "$pid" 5; done
    umount_under "$DOCKER_DIR"
    if [[ -n "$BRIDGE_CREATED" ]] && ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link delete "$BRIDGE" 2>/dev/null || true
    fi
    if [[ -f "$RUN_CONTAINERD_MARK" ]]; then  # made by this script; removed when empty
        rmdir /run/containerd/s /run/containerd 2>/dev/null && rm -f "$RUN_CONTAINERD_MARK"
    fi
    DOCKERD_PID="" CONTAINERD_PID="" BRIDGE_CREATED=""
}

# shellcheck disable=SC2317  # invoked via trap
cleanup() {
    local rc=$?
    trap - INT TERM EXIT
    set +e
    if alive "$SAM_PID"; then
        say "stopping sam local (pid $SAM_PID)"
        # Its own session and group (setsid): SIGTERM to the group, then SIGKILL. SAM run in
        # the background ignores SIGINT.
        kill -TERM -- "-$SAM_PID" 2>/dev/null
        for _ in $(seq 100); do alive "$SAM_PID" || break; sleep 0.1; done
        kill -KILL -- "-$SAM_PID" 2>/dev/null
    fi
    rm -f "$SAM_PIDFILE"
    stop_engine
    if [[ -n "$MOTO_STARTED" ]]; then
        say "stopping moto"
        MOTO_HOST="$BRIDGE_IP" "$ROOT/infra/scripts/moto.sh" stop "$MOTO_PORT"
        rm -f "$MOTO_ADDR_FILE"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 0. what a killed run left -------------------------------------------------------
# Left over from a run that was killed (-9): its sam local, engine and mounts are ours, stop
# them first (each found by the pid file this script wrote, checked against its command line).
if [[ -f "$SAM_PIDFILE" ]]; then
    old_sam="$(cat "$SAM_PIDFILE")"
    if alive "$old_sam" && { tr '\0' ' ' <"/proc/$old_sam/cmdline"; } 2>/dev/null | grep -qF -- "$BUILD_DIR/template.yaml"; then
        say "stopping a sam local left over from an earlier run (pid $old_sam)"
        kill -KILL -- "-$old_sam" 2>/dev/null || kill -KILL "$old_sam" 2>/dev/null || true
    fi
    rm -f "$SAM_PIDFILE"
fi
if [[ -f "$DOCKERD_PIDFILE" ]]; then
    DOCKERD_PID="$(cat "$DOCKERD_PIDFILE")"
    if alive "$DOCKERD_PID" && { tr '\0' ' ' <"/proc/$DOCKERD_PID/cmdline"; } 2>/dev/null | grep -qF -- "$EXEC_ROOT"; then
        say "stopping a dockerd left over from an earlier run (pid $DOCKERD_PID)"
        BRIDGE_CREATED=1 stop_engine
    fi
    DOCKERD_PID=""
    rm -f "$DOCKERD_PIDFILE"
fi
for pid in $(engine_strays); do stop_pid "$pid" 5; done
umount_under "$DOCKER_DIR"

if [[ -f "$MOTO_ADDR_FILE" ]]; then
    read -r old_host old_port <"$MOTO_ADDR_FILE" || true
    [[ -z "${old_port:-}" ]] || MOTO_HOST="$old_host" "$ROOT/infra/scripts/moto.sh" stop "$old_port"
    rm -f "$MOTO_ADDR_FILE"
fi
if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link delete "$BRIDGE"    # ours by name, left by a killed run
fi

# --- 1. packages and tools --------------------------------------------------------------
need=()
for c in dockerd:docker.io containerd:containerd runc:runc iptables:iptables debootstrap:debootstrap \
         docker:docker.io; do
    command -v "${c%%:*}" >/dev/null 2>&1 || need+=("${c#*:}")
done
if ((${#need[@]})); then
    pkgs=(docker.io containerd runc iptables debootstrap)
    say "apt-get install ${pkgs[*]} (missing: ${need[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >"$LOCAL/apt.log" 2>&1 \
        || { apt-get update -qq >>"$LOCAL/apt.log" 2>&1 \
             && apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >>"$LOCAL/apt.log" 2>&1; } \
        || { tail -n 20 "$LOCAL/apt.log" >&2; die "apt-get install failed (log $LOCAL/apt.log)"; }
fi

say "python venvs (.venv: moto, cargo-lambda; .venv-sam: aws-sam-cli)"
"$ROOT/infra/scripts/venv.sh"
"$ROOT/infra/scripts/check-template.sh" --venv-only
export PATH="$ROOT/.venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0   # before the first sam command

if [[ "$MODE" == serve ]]; then
    PORT="${SAM_LOCAL_PORT:-3000}"
    MOTO_PORT="${SAM_LOCAL_MOTO_PORT:-4566}"
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" 2>/dev/null; then
        die "port $PORT is busy (another make sam-local?); set SAM_LOCAL_PORT"
    fi
else
    PORT="$(free_port)"
    MOTO_PORT="$(free_port)"
fi
ISSUER="http://127.0.0.1:$PORT/oauth"
STS_REFUSED_PORT="$(free_port)"   # nothing listens there: SAM's start-up STS call fails at once

# --- 2. private Docker engine ---------------------------------------------------------
subnet="$("$PY" -c 'import ipaddress,sys; print(ipaddress.ip_interface(sys.argv[1]).network)' "$BRIDGE_CIDR")"
if ip -4 route show | awk '{print $1}' | grep -qxF -- "$subnet"; then
    die "$subnet is already routed on this machine; set SAM_LOCAL_BRIDGE_CIDR to a free /24"
fi
ip link add name "$BRIDGE" type bridge
BRIDGE_CREATED=1
ip addr add "$BRIDGE_CIDR" dev "$BRIDGE"
ip link set "$BRIDGE" up

mkdir -p "$DATA_ROOT" "$EXEC_ROOT"
[[ -e /run/containerd ]] || touch "$RUN_CONTAINERD_MARK"
# Its own config file, not the machine's /etc/docker/daemon.json; the engine key (Docker 20.10
# writes one) stays here too, not in /etc/docker.
printf '{"deprecated-key-path": "%s"}\n' "$DOCKER_DIR/key.json" >"$DOCKER_DIR/daemon.json"
say "dockerd (private: ${DOCKER_DIR#"$ROOT"/}, bridge $BRIDGE $BRIDGE_CIDR, no iptables rules)"
setsid dockerd \
    --config-file "$DOCKER_DIR/daemon.json" \
    --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT" --pidfile "$DOCKERD_PIDFILE" \
    -H "unix://$SOCK" \
    --bridge "$BRIDGE" --iptables=false --ip-forward=false --ip-masq=false \
    >"$LOCAL/dockerd.log" 2>&1 </dev/null 9>&- &
DOCKERD_PID=$!
for _ in $(seq 300); do
    docker_ version >/dev/null 2>&1 && break
    alive "$DOCKERD_PID" || { tail -n 20 "$LOCAL/dockerd.log" >&2; die "dockerd exited (log $LOCAL/dockerd.log)"; }
    sleep 0.1
done
docker_ version >/dev/null 2>&1 || die "dockerd not answering on $SOCK after 30 s"
CONTAINERD_PID="$(cat "$EXEC_ROOT/containerd/containerd.pid" 2>/dev/null || true)"
# Docker 20.10 does not report the bridge's gateway: read the address off the interface.
BRIDGE_IP="$(ip -4 -o addr show dev "$BRIDGE" | awk '{split($4, a, "/"); print a[1]; exit}')"
[[ -n "$BRIDGE_IP" ]] || die "no IPv4 address on $BRIDGE"

# --- 3. base image: Debian minbase + CA certificates, imported under SAM's tag ---------------
mkdir -p "$BASE_DIR"
if [[ ! -s "$ROOTFS_TAR" || ! -s "$ROOTFS_TAR.sha256" ]]; then
    mirror="${SAM_LOCAL_DEBIAN_MIRROR:-}"
    if [[ -z "$mirror" ]]; then
        mirror="$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/*[[:space:]]*$/\1/p' \
                  /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)"
    fi
    if [[ -z "$mirror" ]]; then
        mirror="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
    fi
    mirror="${mirror:-http://deb.debian.org/debian}"
    rootfs="$BASE_DIR/rootfs.tmp"
    umount_under "$rootfs"
    rm -rf --one-file-system "$rootfs"
    say "debootstrap --variant=minbase --include=ca-certificates bookworm ($mirror; cached in ${BASE_DIR#"$ROOT"/})"
    if ! debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" \
            >"$BASE_DIR/debootstrap.log" 2>&1; then
        umount_under "$rootfs"
        tail -n 20 "$BASE_DIR/debootstrap.log" >&2
        die "debootstrap failed (log $BASE_DIR/debootstrap.log)"
    fi
    umount_under "$rootfs"
    [[ -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ]] || die "base rootfs has no CA bundle"
    rm -rf --one-file-system "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
    tar --numeric-owner -C "$rootfs" -cf "$ROOTFS_TAR.tmp" .
    rm -rf --one-file-system "$rootfs"
    sha256sum "$ROOTFS_TAR.tmp" | cut -d' ' -f1 >"$ROOTFS_TAR.sha256"
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
fi
want="$(cat "$ROOTFS_TAR.sha256")"
have="$(docker_ image inspect -f '{{.Id}}' "$BASE_TAG" 2>/dev/null || true)"
if [[ -z "$have" || "$(cat "$BASE_DIR/imported" 2>/dev/null)" != "$want $have" ]]; then
    # SAM keeps a derived …-rapid image as long as it exists: drop it with the old base.
    if docker_ image inspect "$RAPID_TAG" >/dev/null 2>&1; then
        say "docker rmi $RAPID_TAG (built on the previous base)"
        docker_ rmi -f "$RAPID_TAG" >/dev/null
    fi
    say "docker import -> $BASE_TAG"
    docker_ import "$ROOTFS_TAR" "$BASE_TAG" >/dev/null
    have="$(docker_ image inspect -f '{{.Id}}' "$BASE_TAG")"
    echo "$want $have" >"$BASE_DIR/imported"
fi

# --- 4. emulator, table, keys, demo data ----------------------------------------------
say "moto_server on $BRIDGE_IP:$MOTO_PORT (the bridge address)"
MOTO_HOST="$BRIDGE_IP" "$ROOT/infra/scripts/moto.sh" stop "$MOTO_PORT"
MOTO_STARTED=1
echo "$BRIDGE_IP $MOTO_PORT" >"$MOTO_ADDR_FILE"
MOTO_HOST="$BRIDGE_IP" "$ROOT/infra/scripts/moto.sh" start "$MOTO_PORT" 9>&-
MOTO_URL="http://$BRIDGE_IP:$MOTO_PORT"

say "cargo build --bin oauthctl"
cargo build --locked --bin oauthctl
OAUTHCTL="${CARGO_TARGET_DIR:-$ROOT/target}/debug/oauthctl"
[[ -x "$OAUTHCTL" ]] || die "$OAUTHCTL missing after cargo build"

SAM_ENV="$LOCAL/sam.env"
cat >"$SAM_ENV" <<EOF
# Written by infra/scripts/sam-local.sh: \`source .local/sam/sam.env\` to run oauthctl against
# the sam local stack, e.g. \`cargo run -p oauthctl -- client list\`.
export TABLE_NAME=$TABLE
export SIGNING_KEYS_SECRET_ID=$SECRET
export AWS_REGION=$REGION
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_ENDPOINT_URL=$MOTO_URL
export AWS_EC2_METADATA_DISABLED=true
export ISSUER=$ISSUER
EOF
ctl() {
    env -u AWS_PROFILE -u AWS_SESSION_TOKEN TABLE_NAME="$TABLE" SIGNING_KEYS_SECRET_ID="$SECRET" \
        AWS_REGION="$REGION" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
        AWS_ENDPOINT_URL="$MOTO_URL" AWS_EC2_METADATA_DISABLED=true "$OAUTHCTL" "$@"
}
json_field() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

say "oauthctl init"
ctl init ${ACCESS_TOKEN_ALG:+--alg "$ACCESS_TOKEN_ALG"} >/dev/null
say "demo client + user"
client_json="$(ctl client create --name demo \
    --grant client_credentials --grant password --grant refresh_token \
    --scope "openid profile email read write" --default-scope read)"
CLIENT_ID="$(json_field client_id <<<"$client_json")"
CLIENT_SECRET="$(json_field client_secret <<<"$client_json")"
DEMO_USER="alice@example.com@carbon.super"
# DEMO_PASSWORD may be given; random otherwise (token_urlsafe may start with "-").
DEMO_PASSWORD="${DEMO_PASSWORD:-$("$PY" -c 'import secrets; print(secrets.token_urlsafe(18))')}"
ctl user create --username "$DEMO_USER" --password="$DEMO_PASSWORD" \
    --claim email=alice@example.com --claim email_verified=true --claim "name=Alice Example" >/dev/null
cat >>"$SAM_ENV" <<EOF
# demo data (moto is in memory: valid until make sam-local stops)
export DEMO_CLIENT_ID='$CLIENT_ID'
export DEMO_CLIENT_SECRET='$CLIENT_SECRET'
export DEMO_USERNAME='$DEMO_USER'
export DEMO_PASSWORD='$DEMO_PASSWORD'
EOF

# --- 5. sam build -----------------------------------------------------------------------
say "sam build (x86_64, debug; log ${LOCAL#"$ROOT"/}/build.log)"
build_start="$(now_ms)"
if ! SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 SAM_BUILD_MODE=debug CARGO_TARGET_DIR="$ROOT/target/sam-local" \
        "$SAM" build --template-file "$ROOT/template.yaml" --build-dir "$BUILD_DIR" \
        --cache-dir "$LOCAL/cache" --parameter-overrides Architecture=x86_64 \
        >"$LOCAL/build.log" 2>&1; then
    tail -n 40 "$LOCAL/build.log" >&2
    die "sam build failed (log $LOCAL/build.log)"
fi
say "sam build done in $(( ($(now_ms) - build_start) / 1000 )) s"

# --- 6. sam local start-api ---------------------------------------------------------------
# --env-vars overrides only variables the template declares (all four are).
ENV_JSON="$LOCAL/env.json"
"$PY" - "$ENV_JSON" "$TABLE" "$SECRET" "$ISSUER" "$MOTO_URL" "${ACCESS_TOKEN_ALG:-}" <<'EOF'
import json, sys
path, table, secret, issuer, endpoint, alg = sys.argv[1:]
p = {"TABLE_NAME": table, "SIGNING_KEYS_SECRET_ID": secret, "ISSUER": issuer, "AWS_ENDPOINT_URL": endpoint}
if alg:
    p["ACCESS_TOKEN_ALG"] = alg
json.dump({"Parameters": p}, open(path, "w"), indent=2)
EOF
SAM_LOG="$LOCAL/start-api.log"
say "sam local start-api on 127.0.0.1:$PORT (log ${SAM_LOG#"$ROOT"/})"
# A clean environment: the containers' credentials come from SAM's own (dummy here), and a
# declared variable set in the shell would override the template's value.
setsid env -i \
    PATH="$ROOT/.venv-sam/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    HOME="$HOME" LANG=C.UTF-8 TMPDIR="${TMPDIR:-/tmp}" \
    DOCKER_HOST="unix://$SOCK" SAM_CLI_TELEMETRY=0 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_REGION="$REGION" AWS_DEFAULT_REGION="$REGION" \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
    AWS_ENDPOINT_URL_STS="http://127.0.0.1:$STS_REFUSED_PORT" AWS_MAX_ATTEMPTS=1 \
    "$SAM" local start-api \
        --template-file "$BUILD_DIR/template.yaml" \
        --host 127.0.0.1 --port "$PORT" \
        --parameter-overrides Architecture=x86_64 \
        --env-vars "$ENV_JSON" \
        --skip-pull-image --warm-containers EAGER \
        --region "$REGION" \
    >"$SAM_LOG" 2>&1 </dev/null 9>&- &
SAM_PID=$!
echo "$SAM_PID" >"$SAM_PIDFILE"

# Ready when every function answers as it should: the JWKS (Secrets Manager reached), an
# unknown client's token request (DynamoDB reached), GET tokeninfo without a token, an unknown
# client's authorization request (the error page, after its DynamoDB read). A 502 is SAM's
# answer for a function that failed to start or answer.
B="http://127.0.0.1:$PORT"
deadline=$((SECONDS + READY_TIMEOUT))
probe() {  # expected status, curl arguments...
    local want_code="$1" code
    shift
    while :; do
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$@" 2>/dev/null || true)"
        [[ "$code" == "$want_code" ]] && return 0
        alive "$SAM_PID" || { tail -n 40 "$SAM_LOG" >&2; die "sam local start-api exited"; }
        ((SECONDS < deadline)) || { tail -n 40 "$SAM_LOG" >&2; die "$* answers $code, not $want_code, after ${READY_TIMEOUT}s"; }
        sleep 0.5
    done
}
probe 200 "$B/oauth/v2/jwks"
probe 401 -u no-such-client:x -d grant_type=client_credentials "$B/oauth/v2/token"
probe 400 "$B/oauth/v2/tokeninfo"
probe 400 "$B/oauth/v2/authorize?client_id=no-such-client"
say "sam local ready after $(elapsed) ($(docker_ ps -q | wc -l) containers running)"

# Warm latency through sam local: client_credentials, sequential, after 3 warm-up requests.
latency() {
    "$PY" - "$B" "$CLIENT_ID" "$CLIENT_SECRET" <<'EOF'
import statistics, sys, time, urllib.request, base64
base, cid, secret = sys.argv[1:]
auth = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()
def once():
    req = urllib.request.Request(base + "/oauth/v2/token", data=b"grant_type=client_credentials",
                                 headers={"Authorization": auth,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200, r.status
        r.read()
    return (time.perf_counter() - t) * 1000
for _ in range(3):
    once()
ms = sorted(once() for _ in range(20))
print(f"warm client_credentials through sam local: median {statistics.median(ms):.1f} ms, "
      f"min {ms[0]:.1f}, max {ms[-1]:.1f} (20 sequential requests)")
EOF
}
say "$(latency)"

if [[ "$MODE" == run ]]; then
    say "running: $*"
    set +e
    OAUTH_E2E_TARGET=sam-local \
    OAUTH_E2E_BASE_URL="$B" \
    OAUTH_E2E_ISSUER="$ISSUER" \
    OAUTH_E2E_AWS_ENDPOINT="$MOTO_URL" \
    OAUTH_E2E_TABLE_NAME="$TABLE" \
    OAUTH_E2E_SECRET_ID="$SECRET" \
    OAUTH_E2E_SAM_LOG="$SAM_LOG" \
    OAUTH_E2E_OAUTHCTL="$OAUTHCTL" \
        "$@"
    rc=$?
    set -e
    say "sam local stack up $(elapsed) in total; stopping it"
    exit "$rc"
fi

cat <<EOF

sam local stack is up (the template's functions in Lambda containers).
  issuer      $ISSUER
  functions   $B   (sam local start-api; log ${SAM_LOG#"$ROOT"/})
  emulator    $MOTO_URL (moto; log .local/moto-$BRIDGE_IP-$MOTO_PORT.log)
  docker      DOCKER_HOST=unix://$SOCK docker ps
  env         source .local/sam/sam.env && cargo run -p oauthctl -- client list
  demo client $CLIENT_ID / $CLIENT_SECRET
  demo user   $DEMO_USER / $DEMO_PASSWORD

Try (paste as they are):
  # client_credentials, client_secret_basic
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=client_credentials -d scope=read $B/oauth/v2/token
  # password, EmpowerID shape: user in Basic, client in a JSON body
  curl -s -u '$DEMO_USER:$DEMO_PASSWORD' -H 'Content-Type: application/json' -d '{"grant_type":"password","client_id":"$CLIENT_ID","client_secret":"$CLIENT_SECRET","redirect_uri":""}' $B/oauth/v2/token
  # password, WSO2 shape (username@email@org is just a username)
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=password --data-urlencode 'username=$DEMO_USER' --data-urlencode 'password=$DEMO_PASSWORD' -d 'scope=openid profile read' $B/oauth2/token
  # refresh: take refresh_token from a password answer
  RT=\$(curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=password --data-urlencode 'username=$DEMO_USER' --data-urlencode 'password=$DEMO_PASSWORD' $B/oauth/v2/token | $PY -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])')
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=refresh_token -d refresh_token=\$RT $B/oauth/v2/token
  # introspection, GET tokeninfo (Bearer header: SAM's log prints query strings), userinfo, revocation, discovery
  AT=\$(curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d grant_type=password --data-urlencode 'username=$DEMO_USER' --data-urlencode 'password=$DEMO_PASSWORD' -d 'scope=openid profile email' $B/oauth/v2/token | $PY -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d token=\$AT $B/oauth/v2/tokeninfo
  curl -s -H "Authorization: Bearer \$AT" $B/oauth/v2/tokeninfo
  curl -s -H "Authorization: Bearer \$AT" $B/oauth/v2/userinfo
  curl -s -u '$CLIENT_ID:$CLIENT_SECRET' -d token=\$AT $B/oauth/v2/revoke -w '%{http_code}\\n'
  curl -s $B/oauth/.well-known/openid-configuration
  curl -s $B/.well-known/oauth-authorization-server/oauth
  curl -s $B/oauth/v2/jwks

Code changes: rerun make sam-local (sam build is incremental). Ctrl-C stops everything
(sam local, its containers, the private dockerd, the bridge, moto).
EOF

wait "$SAM_PID" || true
SAM_PID=""
tail -n 30 "$SAM_LOG" >&2
die "sam local start-api stopped"

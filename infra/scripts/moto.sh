#!/usr/bin/env bash
# Local AWS emulator (moto_server from the project venv: DynamoDB + Secrets Manager).
# Usage: infra/scripts/moto.sh start [PORT]   start in background (no-op if already up), wait until ready
#        infra/scripts/moto.sh stop  [PORT]   stop it (process group), remove pid file
#        infra/scripts/moto.sh wait  [PORT]   wait until it answers (MOTO_WAIT_SECONDS, default 30)
#        infra/scripts/moto.sh status [PORT]
# PORT defaults to 4566. Pid file and log: <repo>/.local/moto-PORT.{pid,log}.
# MOTO_HOST (default 127.0.0.1): the address to bind and probe; another address than the
# default names the files moto-HOST-PORT.* (sam-local.sh binds its Docker bridge's address,
# so the Lambda containers reach moto without leaving the bridge).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
LOCAL="$ROOT/.local"
cmd="${1:-}"
PORT="${2:-4566}"
HOST="${MOTO_HOST:-127.0.0.1}"
TAG="$PORT"
[[ "$HOST" == 127.0.0.1 ]] || TAG="$HOST-$PORT"
PIDFILE="$LOCAL/moto-$TAG.pid"
LOG="$LOCAL/moto-$TAG.log"
URL="http://$HOST:$PORT"

ready() {
    # /moto-api/data.json is served by moto_server itself; any 200 means it's up.
    curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$URL/moto-api/data.json" 2>/dev/null | grep -q '^200$'
}

running_pid() {
    [[ -f "$PIDFILE" ]] || return 1
    local pid
    pid="$(cat "$PIDFILE")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

wait_ready() {
    local deadline=$((SECONDS + ${MOTO_WAIT_SECONDS:-30}))
    while ! ready; do
        if [[ -f "$PIDFILE" ]] && ! running_pid >/dev/null; then
            echo "moto.sh: moto_server on port $PORT exited; log $LOG:" >&2
            tail -n 20 "$LOG" >&2 || true
            return 1
        fi
        if ((SECONDS >= deadline)); then
            echo "moto.sh: moto_server on port $PORT not ready after ${MOTO_WAIT_SECONDS:-30}s; log $LOG" >&2
            return 1
        fi
        sleep 0.2
    done
}

case "$cmd" in
start)
    mkdir -p "$LOCAL"
    if running_pid >/dev/null; then
        wait_ready
        exit 0
    fi
    if ready; then
        echo "moto.sh: port $PORT already serves moto (not started by this script); using it" >&2
        exit 0
    fi
    if [[ ! -x "$VENV/bin/moto_server" ]]; then
        "$ROOT/infra/scripts/venv.sh"
    fi
    # setsid: own process group, so stop can take down the server and its children.
    # One request at a time, so conditional writes are atomic as on AWS (moto_serial.py).
    setsid "$VENV/bin/python" "$ROOT/infra/scripts/moto_serial.py" -H "$HOST" -p "$PORT" \
        >"$LOG" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    wait_ready
    echo "moto.sh: moto_server ready on $URL (pid $(cat "$PIDFILE"), log ${LOG#"$ROOT"/})" >&2
    ;;
stop)
    if pid="$(running_pid)"; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    ;;
wait)
    wait_ready
    ;;
status)
    if pid="$(running_pid)" && ready; then
        echo "moto_server running on $URL (pid $pid)"
    elif ready; then
        echo "moto_server answering on $URL (no pid file)"
    else
        echo "moto_server not running on port $PORT"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start|stop|wait|status [PORT]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The browser tests' tools (tests/e2e/test_browser.py), self-installing and idempotent:
#   - Debian's Chromium at /usr/bin/chromium (apt; Playwright drives it, no browser download);
#   - openid-client, the relying party in tests/e2e/rp (`npm ci` from its package-lock.json).
# Playwright's Python package comes with the venv (tests/requirements.txt, infra/scripts/venv.sh).
# Quiet when everything is already there. Needs root (or sudo) only to install Chromium.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RP="$ROOT/tests/e2e/rp"
CHROMIUM=/usr/bin/chromium

if [[ ! -x "$CHROMIUM" ]]; then
    echo "browser.sh: installing Debian's chromium" >&2
    as_root=()
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null 2>&1 || { echo "browser.sh: need root to apt-get install chromium" >&2; exit 1; }
        as_root=(sudo)
    fi
    log="$(mktemp)"
    if ! { "${as_root[@]}" apt-get update -qq \
           && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "browser.sh: apt-get install chromium failed" >&2
        exit 1
    fi
    rm -f "$log"
    [[ -x "$CHROMIUM" ]] || { echo "browser.sh: $CHROMIUM missing after install" >&2; exit 1; }
fi

command -v node >/dev/null 2>&1 || { echo "browser.sh: node (>= 20) is needed for tests/e2e/rp" >&2; exit 1; }
command -v npm >/dev/null 2>&1 || { echo "browser.sh: npm is needed for tests/e2e/rp" >&2; exit 1; }

# `npm ci` again only when the lock file (or this script) changed, like venv.sh's stamp.
stamp="$RP/node_modules/.lock.sha256"
want="$(cat "$RP/package-lock.json" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "browser.sh: npm ci in tests/e2e/rp" >&2
    log="$(mktemp)"
    if ! (cd "$RP" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "browser.sh: npm ci failed" >&2
        exit 1
    fi
    rm -f "$log"
    echo "$want" >"$stamp"
fi

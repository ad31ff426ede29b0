#!/usr/bin/env bash
# Create/refresh the project venv at <repo>/.venv and install tests/requirements.txt.
# Idempotent: reinstalls only when tests/requirements.txt (or this script) changed.
# Usage: infra/scripts/venv.sh            (quiet on the fast path)
#        VENV_PYTHON=python3.11 infra/scripts/venv.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv"
REQ="$ROOT/tests/requirements.txt"
STAMP="$VENV/.requirements.sha256"

pick_python() {
    if [[ -n "${VENV_PYTHON:-}" ]]; then echo "$VENV_PYTHON"; return; fi
    for p in python3.11 python3; do
        if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi
    done
    echo "venv.sh: no python3 found" >&2
    exit 1
}

want="$(cat "$REQ" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    py="$(pick_python)"
    echo "venv.sh: creating $VENV with $("$py" --version 2>&1)" >&2
    "$py" -m venv "$VENV"
fi

echo "venv.sh: installing $REQ" >&2
log="$(mktemp)"
if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip \
       && "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log" "$STAMP"
    echo "venv.sh: pip install failed" >&2
    exit 1
fi
rm -f "$log"

# Sanity: the tools the scripts rely on must be present.
for tool in moto_server cargo-lambda pytest; do
    if [[ ! -x "$VENV/bin/$tool" ]]; then
        echo "venv.sh: $tool missing from $VENV/bin after install" >&2
        exit 1
    fi
done

echo "$want" >"$STAMP"
echo "venv.sh: ready ($("$VENV/bin/cargo-lambda" lambda --version 2>/dev/null || echo cargo-lambda))" >&2

#!/usr/bin/env bash
# `make deploy`: validate, build the arm64 functions with SAM + cargo-lambda, deploy.
# The first run is guided (writes samconfig.toml); later runs reuse it. Needs AWS credentials.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
infra/scripts/venv.sh                 # cargo-lambda (+ zig) for the Rust build
infra/scripts/check-template.sh       # installs aws-sam-cli into .venv-sam and validates
export PATH="$ROOT/.venv/bin:$ROOT/.venv-sam/bin:$PATH"
export SAM_CLI_BETA_RUST_CARGO_LAMBDA=1
sam build
if [[ -f samconfig.toml ]]; then
    sam deploy
else
    sam deploy --guided
fi

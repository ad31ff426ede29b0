#!/usr/bin/env bash
# `make test`: everything, self-installing, no Docker, no AWS account.
#   1. unit tests of the shared logic (in-memory adapters)
#   2. adapter tests of DynamoDB / Secrets Manager against moto
#   3. end-to-end tests over HTTP through the real function binaries (cargo lambda watch),
#      sign-in among them in headless Chromium with Authlib and openid-client as the apps
#   4. template checks (sam validate --lint, cfn-lint on the translated template, IAM/route tests)
#   5. the template under `sam local start-api` (Docker: the functions in Lambda containers)
#      and the e2e subset marked `sam_local` against it (infra/scripts/sam-local.sh --run;
#      needs root: it installs Docker from apt and runs a private dockerd).
#      OAUTH_SKIP_SAM_LOCAL=1 skips this step (and says so).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
say() { printf '\n==> %s\n' "$*"; }

say "tools (project venv: moto, cargo-lambda, pytest, playwright; Chromium and openid-client)"
infra/scripts/venv.sh
infra/scripts/browser.sh
export PATH="$ROOT/.venv/bin:$PATH"

say "build"
cargo build --workspace --all-targets --locked

say "unit + adapter tests (moto on a free port)"
MOTO_PORT="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
infra/scripts/moto.sh start "$MOTO_PORT"
trap 'infra/scripts/moto.sh stop "$MOTO_PORT" >/dev/null 2>&1 || true' EXIT
OAUTH_TEST_AWS_ENDPOINT="http://127.0.0.1:$MOTO_PORT" \
    cargo test --workspace --locked -- --include-ignored
infra/scripts/moto.sh stop "$MOTO_PORT"

say "end-to-end tests (real binaries over HTTP)"
# The harness builds each binary as `cargo lambda watch` runs it (`cargo run --bin X` resolves
# features for that package alone, unlike the --all-targets build above), so no request compiles.
.venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider

say "template checks"
infra/scripts/check-template.sh

if [[ "${OAUTH_SKIP_SAM_LOCAL:-}" == 1 ]]; then
    say "sam local e2e subset SKIPPED (OAUTH_SKIP_SAM_LOCAL=1)"
else
    say "sam local: the template's functions in Lambda containers, e2e subset against them"
    sam_start=$SECONDS
    infra/scripts/sam-local.sh --run .venv/bin/python -m pytest tests/e2e -q -p no:cacheprovider
    say "sam local step took $((SECONDS - sam_start)) s"
fi

say "all tests passed"

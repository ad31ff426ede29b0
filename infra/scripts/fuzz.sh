#!/usr/bin/env bash
# `make fuzz`: bounded coverage-guided fuzzing of the token endpoint's request handling
# (cargo-fuzz + libFuzzer on the nightly toolchain). FUZZ_SECONDS bounds the run (default 120).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT/fuzz"
command -v cargo-fuzz >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
seconds="${FUZZ_SECONDS:-120}"
mkdir -p corpus/token_request
# Seeds: the request shapes of the seeds (selector bytes, Authorization line, body).
printf '\x00\x00Basic YXBwOmNsaWVudC1zZWNyZXQ=\ngrant_type=client_credentials&scope=read' >corpus/token_request/cc
printf '\x01\x00Basic YWxpY2U6cHc=\n{"grant_type":"password","client_id":"app","client_secret":"s","redirect_uri":""}' >corpus/token_request/empowerid
printf '\x00\x00\ngrant_type=refresh_token&refresh_token=AAAAAAAAAAAAAAAAAAAAAA.BBBB&client_id=a&client_secret=b' >corpus/token_request/refresh
cargo +nightly fuzz run token_request corpus/token_request -- \
    -max_total_time="$seconds" -max_len=20000 -print_final_stats=1 2>&1 | tee "$ROOT/.local/fuzz.log" | tail -n 25

# Two commands do everything on a fresh machine: `make dev` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: help dev sam-local test lint build bench fuzz screenshot deploy clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

dev: ## Local stack: moto + the four functions on 127.0.0.1:9000; prints curl examples
	infra/scripts/dev.sh

sam-local: ## The template under sam local start-api (Docker, x86_64) on 127.0.0.1:3000; prints curl examples
	infra/scripts/sam-local.sh

test: ## Unit, adapter (moto), end-to-end (real binaries over HTTP), template tests, sam local e2e subset
	infra/scripts/test.sh

lint: ## rustfmt and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	# The domain without the AWS adapters and lambda glue (what the fuzz build compiles).
	cargo clippy -p shared --lib --no-default-features --locked -- -D warnings

build: ## Release arm64 zips of the five functions (target/lambda/*/bootstrap.zip)
	infra/scripts/venv.sh
	cargo lambda build --release --arm64 --output-format zip
	@ls -l target/lambda/*/bootstrap.zip

bench: ## Benchmarks (see README, Performance): table + bench-results.json (BENCH_SKIP_ARM64=1 skips the zips)
	bench/run.sh

fuzz: ## Bounded fuzzing of request handling (FUZZ_SECONDS per target, default 120)
	infra/scripts/fuzz.sh

screenshot: ## docs/login-page.png: the hosted login page in Chromium (through make dev)
	infra/scripts/venv.sh
	infra/scripts/browser.sh
	.venv/bin/python infra/scripts/screenshot.py

deploy: ## sam build + sam deploy (guided the first time)
	infra/scripts/deploy.sh

clean: ## Remove build output and local state
	cargo clean
	rm -rf .local .aws-sam

# The two commands: `make dev` (run the gateway locally with a demo origin and a local issuer)
# and `make test` (the whole suite). Everything else is a step of those or a convenience.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
# worker-build downloads these from GitHub unless told where they are.
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export WASM_OPT_BIN := $(CURDIR)/miniflare/node_modules/.bin/wasm-opt
export ESBUILD_BIN := $(CURDIR)/miniflare/node_modules/.bin/esbuild
export PATH := $(CARGO_BIN):$(PATH)

# The commit /_gateway/health reports (build.rs embeds it): HEAD, `-dirty` with uncommitted
# changes to tracked files. The gateway is rebuilt when it changes (target/build-commit).
export GATEWAY_BUILD_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell [ -z "$$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || echo -dirty)
COMMIT_STAMP := target/build-commit
$(shell mkdir -p target && { [ "$$(cat $(COMMIT_STAMP) 2>/dev/null)" = "$(GATEWAY_BUILD_COMMIT)" ] || echo "$(GATEWAY_BUILD_COMMIT)" > $(COMMIT_STAMP); })

WORKER_SOURCES := $(shell find src core/src \( -name '*.rs' -o -name '*.js' -o -name '*.mjs' \)) Cargo.toml Cargo.lock \
	core/Cargo.toml build.rs gateway.toml
COUNTERS_SOURCES := $(shell find durable/src core/src -name '*.rs') Cargo.toml Cargo.lock core/Cargo.toml \
	durable/Cargo.toml durable/entry.mjs

# Token defaults for `make token`.
ORG ?= acme
TIER ?= pro
SCOPES ?= transactions:read
EXPIRES_IN ?= 900
CLAIMS ?=
ISSUER_PORT ?= 9101

FUZZ_SECONDS ?= 60

# `make secrets-sync`: which environment and target (see docs/secrets.md).
SYNC_ENV ?= dev
SYNC_TARGET ?= dev-vars
SYNC_ARGS ?=

# `make deploy`: see docs/deploy.md (scripts/deploy.sh checks its inputs before building).
ENV ?=
COUNTERS_MIGRATION ?=
DRY_RUN ?=

.PHONY: help setup build deploy dev token test fuzz bench-build bench-auth bench-limit bench-boundary bench bench-reservations clean secrets-sync vault-dev scan

help:
	@echo "make dev     run the gateway on http://127.0.0.1:8787 with the demo origin and local issuer"
	@echo "make test    the whole suite: fmt, clippy, native tests, wasm build, end-to-end"
	@echo "make token   ORG=acme TIER=pro SCOPES=\"transactions:read reports:generate\" [EXPIRES_IN=900] [CLAIMS='{\"k\":\"v\"}']"
	@echo "make secrets-sync  sync Worker secrets from Vault (SYNC_ENV=dev SYNC_TARGET=dev-vars|cloudflare SYNC_ARGS=--dry-run)"
	@echo "make vault-dev     a local OpenBao holding the dev secrets, for make secrets-sync"
	@echo "make deploy  ENV=staging|production COUNTERS_MIGRATION=create|transfer [DRY_RUN=1]: the counters Worker, then the gateway with its secrets, then a smoke check (docs/deploy.md)"
	@echo "make build   build both Workers: the gateway (build/) and the counters Worker (durable/build/)"
	@echo "make setup   install the pinned toolchain pieces (idempotent)"
	@echo "make bench   the gateway vs a JavaScript peer (jose + Durable Object limiter), same runtime, same run"
	@echo "make bench-reservations  the counter object's writes per admitted request and req/s: reservations vs the previous write-behind"
	@echo "make bench-limit req/s and p99 through the gateway with rate limiting on and off (autocannon)"
	@echo "make bench-auth  time token verification in workerd: gateway (cache off/on) vs crypto.subtle vs pure Rust"
	@echo "make bench-boundary  the two header blocks of a forwarded request: rebuilt whole vs copied and edited, in workerd"
	@echo "make scan    local DAST against the gateway: schemathesis (openapi.json, with and without a token) and wapiti; reports in target/scan/"
	@echo "make fuzz    fuzz the token, path and policy parsers (nightly + cargo-fuzz; FUZZ_SECONDS=60 each)"

setup:
	@scripts/setup.sh

secrets-sync:
	@cargo run --quiet --release --locked -p secrets-sync -- --env $(SYNC_ENV) --target $(SYNC_TARGET) $(SYNC_ARGS)

vault-dev:
	@scripts/vault-dev.sh

scan:
	@scripts/scan.sh

build/index.js: $(WORKER_SOURCES) $(COMMIT_STAMP)
	worker-build --release
	cp src/entry.mjs build/entry.mjs
	@touch $@

# The counters Worker (durable/: the rate-limit counter object), deployed as its own script.
durable/build/index.js: $(COUNTERS_SOURCES)
	worker-build --release durable
	cp durable/entry.mjs durable/build/entry.mjs
	@touch $@

build: setup build/index.js durable/build/index.js

deploy:
	@ENV='$(ENV)' COUNTERS_MIGRATION='$(COUNTERS_MIGRATION)' DRY_RUN='$(DRY_RUN)' scripts/deploy.sh

dev: build
	cargo build --release -p gateway-demo --locked
	scripts/dev.sh

# Prints only the token (build output goes to stderr).
token:
	@cargo build --release -q -p gateway-demo --locked 1>&2
	@target/release/gateway-demo token --keys .local/issuer --issuer http://127.0.0.1:$(ISSUER_PORT) \
		--audience https://api.example.com --org "$(ORG)" --tier "$(TIER)" --scopes "$(SCOPES)" \
		--expires-in "$(EXPIRES_IN)" $(if $(CLAIMS),--claims '$(CLAIMS)')

test:
	scripts/test.sh

# The authentication micro-benchmark: a separate build (feature `bench`, bench policy) into
# build-bench/, run in wrangler dev by bench/auth/run.mjs. BENCH_TOKENS, BENCH_PASSES, BENCH_ROUNDS.
bench-build: setup durable/build/index.js
	GATEWAY_POLICY=bench/policy.toml worker-build --release --out-dir build-bench . --features bench
	cp src/entry.mjs build-bench/entry.mjs

bench-auth: bench-build
	node bench/auth/run.mjs

# The header-block micro-benchmark (the origin request's and the client response's headers,
# rebuilt whole or copied and edited). BENCH_PASSES, BENCH_ROUNDS.
bench-boundary: bench-build
	node bench/boundary/run.mjs

# The rate-limiting benchmark: autocannon (bench/package.json) against the demo origin and the
# benchmark build. BENCH_ROUNDS, BENCH_SECONDS, BENCH_CONNECTIONS.
bench-limit: bench-build
	cargo build --release -p gateway-demo --locked
	@[ -x bench/node_modules/.bin/autocannon ] || npm ci --prefix bench --no-audit --no-fund --loglevel=error
	node bench/limit/run.mjs

# The side-by-side comparison: the gateway (benchmark build) against the JavaScript peer
# (bench/peer: jose + a Durable Object limiter) in the same runtime and run. Both must pass the
# same end-to-end checks first. BENCH_ROUNDS (5), BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_TOKEN_POOL,
# BENCH_RUNTIME (workerd: both in plain workerd through Miniflare, the default; wrangler: each in
# wrangler dev), BENCH_ONLY=<regex>, BENCH_LATENCY=1, BENCH_CPU=1, BENCH_PROFILE=1|hot|miss.
bench: bench-build build
	cargo build --release -p gateway-demo --locked
	@[ -x bench/node_modules/.bin/autocannon ] && [ -d bench/node_modules/jose ] || npm ci --prefix bench --no-audit --no-fund --loglevel=error
	node bench/compare/run.mjs
	@$(MAKE) --no-print-directory bench-reservations

# The counter object's durability side by side: this build's reservations against the previous
# release's write-behind (req/s and storage writes per admitted request, free/pro/enterprise).
# BENCH_ROUNDS (3), BENCH_SECONDS (4), BENCH_CONNECTIONS (8).
bench-reservations: build
	scripts/build-previous.sh
	node bench/reservations/run.mjs

# Fuzz targets for every parser of untrusted bytes (fuzz/fuzz_targets). Not part of `make test`:
# it needs the nightly toolchain and cargo-fuzz. Seeds in fuzz/seeds/<target>; findings in
# fuzz/artifacts/<target>.
fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

clean:
	rm -rf build target/e2e

# SM8 Webhooks — build, run and test. Every target installs what it needs when it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

NAME := sm8-webhooks
SITE := target/site
PKG := $(SITE)/pkg
BIN := target/release/$(NAME)
WASM_BINDGEN_VERSION := 0.2.130
BINARYEN_VERSION := 132.0.0
TOOLS := target/tools
WASM_OPT := $(TOOLS)/node_modules/.bin/wasm-opt
WASM_RAW := target/wasm32-unknown-unknown/wasm-release/frontend.wasm
# The bundles of the areas that have their own (`app::Area`): the client portal's pages only (`portal-frontend`),
# so a portal user downloads no admin page, and the dashboard's (`dashboard-frontend`).
PORTAL_RAW := target/wasm32-unknown-unknown/wasm-release/portal_frontend.wasm
PORTAL := $(NAME)-portal
DASHBOARD_RAW := target/wasm32-unknown-unknown/wasm-release/dashboard_frontend.wasm
DASHBOARD := $(NAME)-dashboard
BUNDLES := $(PKG)/$(NAME)_bg.wasm $(PKG)/$(PORTAL)_bg.wasm $(PKG)/$(DASHBOARD)_bg.wasm
STYLESHEETS := $(PKG)/$(NAME).css $(PKG)/$(PORTAL).css $(PKG)/$(DASHBOARD).css
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
# The product (app, server, the wire formats), the simulated ServiceM8 account, the tools, and the binary with the
# system's integration tests.
RUST_PACKAGES := -p app -p server -p sm8-wire -p servicem8-mock -p sm8-tools -p sm8-webhooks
CARGO_TEST := cargo test --locked $(RUST_PACKAGES)
FUZZ_TARGETS := delivery_decoder signature_checks form_parser realtime_frames
FUZZ_SECONDS ?= 300
FUZZ_SMOKE_SECONDS := 15
# One build serves every target: optimised, with debug assertions and overflow checks on (an overflow is a finding),
# and no sanitizer. The fuzzed code is safe Rust, so AddressSanitizer would catch nothing that does not already
# panic, while it lengthens the build and slows every execution; without it `fuzz-deps` and `fuzz-smoke` take about
# four minutes on a clean clone.
FUZZ_FLAGS := --fuzz-dir fuzz --sanitizer none --debug-assertions

.PHONY: all build run test test-rust test-postgres test-e2e test-realtime-js test-contract contract-deps test-ops ops-deps fuzz \
	fuzz-smoke fuzz-deps smtp-test-deps bench tools wasm-target e2e-deps postgres lint fmt clean FORCE

all: build

## build: the server binary (target/release/sm8-webhooks) and the site (target/site), its bundles (the whole
## site's, the client portal's and the dashboard's) named by their content and compressed (brotli, gzip) by
## `sm8-webhooks pack-site`
build: $(BIN) $(BUNDLES) $(STYLESHEETS) $(SITE)/.assets $(PKG)/.packed

wasm-target:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

tools: wasm-target
	@wasm-bindgen --version 2>/dev/null | grep -q "$(WASM_BINDGEN_VERSION)" || \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)
	@test -x $(WASM_OPT) || npm install --prefix $(TOOLS) --no-save --no-audit --no-fund binaryen@$(BINARYEN_VERSION)

$(BIN): FORCE
	cargo build --release --locked -p $(NAME)

# One cargo run builds every bundle, sharing the app crate's build.
$(WASM_RAW): FORCE | tools
	cargo build --locked -p frontend -p portal-frontend -p dashboard-frontend --lib \
		--target wasm32-unknown-unknown --profile wasm-release

$(PORTAL_RAW) $(DASHBOARD_RAW): $(WASM_RAW) ;

# A bundle `$(PKG)/{name}_bg.wasm` and its script from the compiled `$<`, then made smaller by wasm-opt.
define bind_bundle
	wasm-bindgen --target web --no-typescript --out-name $(@F:_bg.wasm=) --out-dir $(PKG) $<
	$(WASM_OPT) -Oz --enable-bulk-memory --enable-nontrapping-float-to-int $@ -o $@
endef

$(PKG)/$(NAME)_bg.wasm: $(WASM_RAW)
	$(bind_bundle)

$(PKG)/$(PORTAL)_bg.wasm: $(PORTAL_RAW)
	$(bind_bundle)

$(PKG)/$(DASHBOARD)_bg.wasm: $(DASHBOARD_RAW)
	$(bind_bundle)

# main.css first, then the stylesheets of each area (dashboard, portal, ...) in name order.
$(PKG)/$(NAME).css: style/main.css $(filter-out style/main.css,$(wildcard style/*.css))
	@mkdir -p $(PKG)
	cat $^ > $@

# Each area's bundle has the site's stylesheet under its own name (Leptos names it after the bundle).
$(PKG)/$(PORTAL).css $(PKG)/$(DASHBOARD).css: $(PKG)/$(NAME).css
	cp $< $@

$(PKG)/.packed: $(BIN) $(BUNDLES) $(STYLESHEETS)
	$(BIN) pack-site --pkg $(PKG)
	@touch $@

$(SITE)/.assets: $(wildcard public/*)
	@mkdir -p $(SITE)
	cp -r public/. $(SITE)/
	@touch $@

## run: serve on http://127.0.0.1:3000 with SQLite at data/sm8.db; demo mode (a simulated ServiceM8 account)
## unless ServiceM8 credentials are configured in the environment or .env
run: build
	@if [ -n "$${SERVICEM8_API_KEY:-}$${SERVICEM8_ACCESS_TOKEN:-}" ] || \
		grep -qsE '^(export +)?SERVICEM8_(API_KEY|ACCESS_TOKEN)=.+' .env; then \
		exec $(BIN) serve; \
	else \
		echo "No ServiceM8 credentials configured: starting demo mode with a simulated ServiceM8 account."; \
		exec $(BIN) demo; \
	fi

## test: every test of the project: Rust suites on SQLite and PostgreSQL (started if it is down), a short run of
## every fuzz target, browser tests, and the API contract
test: test-rust fuzz-smoke test-postgres test-e2e test-realtime-js test-contract test-ops

test-rust: smtp-test-deps
	$(CARGO_TEST)

AIOSMTPD_VERSION := 1.4.6

## smtp-test-deps: aiosmtpd, the SMTP server the email destination's tests send to
smtp-test-deps:
	@python3 -c 'import aiosmtpd' 2>/dev/null || \
		python3 -m pip install --quiet "aiosmtpd==$(AIOSMTPD_VERSION)"

## test-postgres: the store conformance suite against the local PostgreSQL server
test-postgres: postgres
	@psql "$(TEST_DATABASE_URL)" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'sm8_test_%'" | \
		while read -r name; do psql "$(TEST_DATABASE_URL)" -qc "DROP DATABASE IF EXISTS $$name"; done
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) cargo test --locked -p $(NAME) --test integration -- --ignored

postgres:
	@pg_isready -h 127.0.0.1 -p 5432 -q || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && exit 0; sleep 1; done; \
		echo "PostgreSQL is not answering on 127.0.0.1:5432" >&2; exit 1

e2e-deps:
	@test -x /usr/bin/chromium || { apt-get update && apt-get install -y chromium; }
	@# Installed again whenever package-lock.json changed since the last install.
	@test end2end/node_modules/.package-lock.json -nt end2end/package-lock.json || \
		(cd end2end && npm ci --no-audit --no-fund)

test-e2e: build e2e-deps
	cd end2end && npx playwright test

## test-realtime-js: the real @supabase/realtime-js client (Node, `ws` transport) against the release server
test-realtime-js: build e2e-deps
	cd end2end && node --test realtime/*.test.mjs

SCHEMATHESIS_VERSION := 4.32.5

contract-deps:
	@schemathesis --version 2>/dev/null | grep -q "$(SCHEMATHESIS_VERSION)" || \
		python3 -m pip install --quiet "schemathesis==$(SCHEMATHESIS_VERSION)"

## test-contract: schemathesis against the release server's /api/openapi.json: no 5xx, no undocumented status,
## no response that breaks the document (CONTRACT_EXAMPLES per operation, default 100)
test-contract: build contract-deps
	CONTRACT_EXAMPLES=$${CONTRACT_EXAMPLES:-100} end2end/contract/run.sh $(BIN)

# The fuzz targets need nightly and cargo-fuzz; the machine's image carries nightly, and rustup fetches it where not.
fuzz-deps:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked

# Builds the targets once, then runs each for $(1) seconds on a copy of its seed corpus (fuzz/corpus/<target>), so
# that what the fuzzer adds stays out of the repository. A failing input is saved in fuzz/artifacts/<target>/: fix
# the bug, then keep the input in fuzz/regressions/<target>/, where `cargo test -p sm8-wire` replays it.
# `-verbosity=0` drops libFuzzer's line per new input (tens of thousands in a smoke run); the final statistics and
# a failure's report still print.
define run_fuzz_targets
	cargo +nightly fuzz build $(FUZZ_FLAGS)
	@for target in $(FUZZ_TARGETS); do \
		corpus=$$(mktemp -d); cp fuzz/corpus/$$target/* $$corpus/; \
		echo "fuzzing $$target for $(1) s"; \
		if ! cargo +nightly fuzz run $(FUZZ_FLAGS) $$target $$corpus -- \
			-max_total_time=$(1) -timeout=10 -verbosity=0 -print_final_stats=1; then \
			rm -rf $$corpus; \
			echo "FUZZING FAILED in $$target: a failing input is saved in fuzz/artifacts/$$target/" >&2; \
			exit 1; \
		fi; \
		rm -rf $$corpus; \
	done
endef

## fuzz-smoke: each fuzz target for $(FUZZ_SMOKE_SECONDS) s (part of `make test`)
fuzz-smoke: fuzz-deps
	$(call run_fuzz_targets,$(FUZZ_SMOKE_SECONDS))

## fuzz: each fuzz target for FUZZ_SECONDS (default 300 s)
fuzz: fuzz-deps
	$(call run_fuzz_targets,$(FUZZ_SECONDS))

ops-deps:
	@command -v promtool >/dev/null || { apt-get update && apt-get install -y --no-install-recommends prometheus; }

## test-ops: the Prometheus alerting rules (promtool check and unit tests) and the Grafana dashboard's queries in
## ops/, against the metrics the server exports
test-ops: ops-deps
	ops/check.sh

## bench: measure ingest and its latency tail, end to end, fan-out, processing (alone, with rules, beside ingest),
## the bundle and a 5-minute soak against their targets on SQLite, then the tail, end to end, processing and two
## nodes on PostgreSQL with short steps: about 10 minutes (each scenario is bounded; 26 minutes at worst).
## Prints a table and writes bench/results.json. BENCH_FLAGS=--quick for short steps, --postgres for every
## scenario on PostgreSQL alone, --sqlite-only to leave PostgreSQL out.
bench: build e2e-deps postgres
	timeout 1570 $(BIN) bench $(BENCH_FLAGS)

## lint: formatting, and clippy on the server side and on the browser side (hydrate-only code included)
lint: wasm-target
	cargo fmt --all -- --check
	cargo clippy --locked $(RUST_PACKAGES) --all-targets -- -D warnings
	cargo clippy --locked --target wasm32-unknown-unknown -p frontend -p portal-frontend -p dashboard-frontend -p app \
		--features app/hydrate -- -D warnings

fmt:
	cargo fmt --all

clean:
	cargo clean

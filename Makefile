# Gate developer commands. `make test` is the one test command (CI runs it via .ci/run).
CARGO ?= cargo
CARGO_FLAGS ?= --locked

.PHONY: help deps patched-deps test-venv build dev test lint fmt generate verify-generated bench policy-test fuzz e2e

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 20

deps: ## install missing system packages the tests need (apt, when root)
	@scripts/deps.sh

patched-deps: ## extract the dependencies Gate patches (third_party/) into .patched/; every cargo target runs it
	@scripts/patch-deps.sh

test-venv: ## create (once per machine) the Python venv of test peers (scripts/test-requirements.txt)
	@scripts/test-venv.sh

dev: deps patched-deps test-venv ## local stack: sample PostgreSQL, MariaDB, API, nx-27017 + gate-connector on :6432 (Ctrl-C stops it)
	@scripts/dev.sh

build: patched-deps ## build every crate and binary
	$(CARGO) build --workspace $(CARGO_FLAGS)

test: deps patched-deps test-venv ## everything CI checks: fmt, clippy, generated files, unit + integration + doc tests
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(CARGO_FLAGS) -- -D warnings
	$(MAKE) --no-print-directory verify-generated
	$(CARGO) nextest run --workspace $(CARGO_FLAGS) --no-tests=pass
	$(CARGO) test --workspace --doc $(CARGO_FLAGS)
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-policy -- test policies/

e2e: deps patched-deps ## end-to-end suite: real gate-control + gate-connector processes, PostgreSQL, curl and tokio-postgres (also part of make test)
	$(CARGO) build --workspace $(CARGO_FLAGS)
	$(CARGO) nextest run -p gate-e2e $(CARGO_FLAGS)

policy-test: patched-deps ## run the policy library's Rego tests and YAML cases
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-policy -- test policies/

lint: patched-deps ## rustfmt check and clippy with -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(CARGO_FLAGS) -- -D warnings

fmt: patched-deps ## format the code
	$(CARGO) fmt --all

generate: patched-deps ## regenerate committed generated code (proto/src/gen from proto/gate/v1/*.proto; no protoc needed; crds/ from the operator's CRD types)
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-proto --features codegen --bin gate-proto-gen
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-operator --bin crdgen -- --out crds

verify-generated: patched-deps ## fail if committed generated code differs from what `make generate` would write
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-proto --features codegen --bin gate-proto-gen -- --check
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-operator --bin crdgen -- --out crds --check

bench: deps patched-deps test-venv ## run the benchmarks; each prints ratios against a baseline run in the same invocation
	$(CARGO) bench $(CARGO_FLAGS) -p gate-policy --bench policy_eval
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench pgbench
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench http_wrk
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench sysbench
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench mongo_find
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench ssh

FUZZ_TARGETS := pg_frontend pg_backend scram_server sql_normalize detect pg_redact http_enforce http_request mysql_packets mongodb_messages
FUZZ_SECONDS ?= 60

fuzz: patched-deps ## run each cargo-fuzz target for FUZZ_SECONDS (default 60); installs cargo-fuzz if missing
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

# Gate developer commands. `make test` is the one test command (CI runs it via .ci/run).
CARGO ?= cargo
CARGO_FLAGS ?= --locked

.PHONY: help deps patched-deps test-venv test-npm build dev test lint fmt generate verify-generated bench policy-test fuzz e2e chart-test chart-snapshots image e2e-kind

VENV_PYTHON ?= $(or $(GATE_TEST_VENV),$(HOME)/.cache/gate/test-venv)/bin/python
IMAGE_REGISTRY ?= ghcr.io/gate-dev
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: "\(.*\)"/\1/p' charts/gate/Chart.yaml)

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

test-npm: ## install the npm packages test peers use (control/tests/peers/*; npm ci into ~/.cache/gate/test-npm, once per lockfile)
	@scripts/test-npm.sh

test: deps patched-deps test-venv ## everything CI checks: fmt, clippy, generated files, unit + integration + doc tests
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(CARGO_FLAGS) -- -D warnings
	$(MAKE) --no-print-directory verify-generated
	scripts/test-npm.sh
	$(CARGO) nextest run --workspace $(CARGO_FLAGS) --no-tests=pass
	$(CARGO) test --workspace --doc $(CARGO_FLAGS)
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-policy -- test policies/
	$(MAKE) --no-print-directory chart-test

e2e: deps patched-deps ## end-to-end suite: real gate-control + gate-connector processes, PostgreSQL, curl and tokio-postgres (also part of make test)
	$(CARGO) build --workspace $(CARGO_FLAGS)
	$(CARGO) nextest run -p gate-e2e $(CARGO_FLAGS)

policy-test: patched-deps ## run the policy library's Rego tests and YAML cases
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-policy -- test policies/

chart-test: test-venv ## the Helm chart offline (helm-python-sdk render, lint, kubernetes-validate, snapshots, schema) and dashboards/alerts (promtool); needs target/debug binaries
	$(VENV_PYTHON) charts/tests/chart_test.py
	$(VENV_PYTHON) charts/tests/monitoring_test.py

chart-snapshots: test-venv ## rewrite charts/tests/snapshots/ from the current chart (review the diff before committing)
	UPDATE_SNAPSHOTS=1 $(VENV_PYTHON) charts/tests/chart_test.py Render.test_every_values_set_matches_its_snapshot

image: ## build the three images with Docker (gate-control, gate-connector, gate-operator) tagged $(IMAGE_REGISTRY)/gate-<binary>:$(IMAGE_TAG)
	@command -v docker >/dev/null || { echo "image: docker is not installed on this machine" >&2; exit 1; }
	for b in control connector operator; do \
	  docker build --target gate-$$b -t $(IMAGE_REGISTRY)/gate-$$b:$(IMAGE_TAG) . || exit 1; \
	done

e2e-kind: ## the cluster suite on kind (needs Docker, kind, kubectl, helm): e2e/kind/run.sh
	e2e/kind/run.sh

lint: patched-deps ## rustfmt check and clippy with -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets $(CARGO_FLAGS) -- -D warnings

fmt: patched-deps ## format the code
	$(CARGO) fmt --all

generate: patched-deps test-venv ## regenerate committed generated code (proto/src/gen from proto/gate/v1/*.proto; no protoc needed; crds/ and the chart's copy from the operator's CRD types; the chart's values.schema.json)
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-proto --features codegen --bin gate-proto-gen
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-operator --bin crdgen -- --out crds
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-operator --bin crdgen -- --out charts/gate/files/crds
	$(VENV_PYTHON) charts/tests/values_schema.py

verify-generated: patched-deps ## fail if committed generated code differs from what `make generate` would write
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-proto --features codegen --bin gate-proto-gen -- --check
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-operator --bin crdgen -- --out crds --check
	$(CARGO) run -q $(CARGO_FLAGS) -p gate-operator --bin crdgen -- --out charts/gate/files/crds --check
	$(VENV_PYTHON) charts/tests/values_schema.py --check

bench: deps patched-deps test-venv ## run the benchmarks; each prints ratios against a baseline run in the same invocation
	$(CARGO) bench $(CARGO_FLAGS) -p gate-policy --bench policy_eval
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench pgbench
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench http_wrk
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench sysbench
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench mongo_find
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench ssh
	$(CARGO) bench $(CARGO_FLAGS) -p gate-connector --bench mcp_calls

FUZZ_TARGETS := pg_frontend pg_backend scram_server sql_normalize detect pg_redact http_enforce http_request mysql_packets mongodb_messages asciicast_roundtrip
FUZZ_SECONDS ?= 60

fuzz: patched-deps ## run each cargo-fuzz target for FUZZ_SECONDS (default 60); installs cargo-fuzz if missing
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
	done

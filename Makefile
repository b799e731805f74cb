# The two commands a newcomer needs: `make run` and `make test`. Everything else is a step of those.
# All builds use the release profile and the whole workspace (never `-p`, whose feature set differs),
# so dependencies compile once for run, test and bench.

CARGO ?= cargo
VENV  ?= .venv
BIN   := target/release

.PHONY: build services services-cluster services-down init run test test-rust test-current-clickhouse test-cluster test-durability test-python test-fuzz lint fmt bench clean-stack

build:
	$(CARGO) build --release --workspace --bins

## Install (if missing) and start broker, schema registry, ClickHouse, MongoDB-wire server, Redis.
services: build
	scripts/services.sh up

## A local ClickHouse cluster (2 shards x 2 replicas, ZooKeeper) beside the services.
services-cluster: services
	scripts/services-cluster.sh up

## Stop exactly the processes `make services` and `make services-cluster` started.
services-down:
	scripts/services-cluster.sh down
	scripts/services.sh down

## Topics, schemas, ClickHouse tables (idempotent).
init: build services
	$(BIN)/ugc-init

## Services + init + the API and the consumers in the foreground; Ctrl-C stops ours.
run: init
	scripts/run.sh

## Everything CI runs: starts services if needed, then every Rust and Python test.
test: build services test-rust test-current-clickhouse test-cluster test-python test-fuzz

test-rust:
	$(CARGO) test --release --workspace

## The ClickHouse suites again on a current ClickHouse engine (chdb-core 26.x), row types validated.
test-current-clickhouse:
	scripts/test-current-clickhouse.sh

## The ClickHouse suites on a local 2-shard x 2-replica cluster, and a replica SIGKILLed under load.
test-cluster: build services
	scripts/test-cluster.sh

## A broker restart loses no acknowledged event (durable broker build, ~30 min once; not in `test`).
test-durability: build services
	scripts/test-durability.sh

test-python:
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check pytest pyyaml check-jsonschema
	$(VENV)/bin/python -m pytest -q tests/python

## schemathesis against the API's own OpenAPI document: no generated request may get a 5xx.
test-fuzz:
	scripts/schemathesis.sh

## Benchmarks (not timed tests): results go to docs/benchmarks.md.
bench: build services
	$(BIN)/ugc-init
	scripts/bench.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Remove local data (stops services first).
clean-stack: services-down
	rm -rf .stack

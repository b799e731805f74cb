#!/usr/bin/env bash
# `make test-durability`: a broker restart loses no acknowledged event. Needs Tansu 0.6.0 built with
# SQLite storage (the local stack's broker keeps its data in memory): built once into
# .stack/tansu-durable (about 30 minutes on 2 cores) and reused. Not part of `make test`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="$ROOT/.stack/tansu-durable"
BIN="$PREFIX/bin/tansu"

if [[ ! -x "$BIN" ]]; then
  echo "[durability] building tansu 0.6.0 with SQLite storage into $PREFIX (once; ~30 min)"
  cargo install tansu@0.6.0 --locked --features libsql,postgres --root "$PREFIX"
fi

cd "$ROOT"
timeout 900 env TANSU_DURABLE_BIN="$BIN" REGISTRY_BIN="$ROOT/target/release/schema-registry" \
  cargo test --release --workspace --test api -- --ignored --exact \
  durability::a_broker_restart_loses_no_acknowledged_event --nocapture

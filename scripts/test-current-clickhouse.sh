#!/usr/bin/env bash
# The ClickHouse test suites again, on a current ClickHouse engine (chdb-core, in-process, behind
# scripts/chdb_http.py) with row-type validation on: every DDL statement, migration and backfill of
# ugc-init, every insert of the sinks and every query of the API run on 26.x as well as on the local
# 18.16, and every column read or written is checked against the Rust row type. Run by `make test`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PORT="${CHDB_PORT:-18123}"
DIR="$ROOT/.stack/chdb"
CHDB_VERSION="26.9.0"

log() { printf '[current-clickhouse] %s\n' "$*"; }

if ! "$VENV/bin/python" -c 'import chdb, lz4' 2>/dev/null; then
  log "pip install chdb-core==$CHDB_VERSION lz4"
  "$VENV/bin/pip" install -q --disable-pip-version-check "chdb-core==$CHDB_VERSION" lz4
fi

rm -rf "$DIR"
mkdir -p "$DIR"
"$VENV/bin/python" "$ROOT/scripts/chdb_http.py" "$PORT" "$DIR" >"$DIR/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 150); do
  if curl -sf "http://127.0.0.1:$PORT/ping" >/dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$DIR/server.log" >&2; exit 1; fi
  sleep 0.2
done
log "$(head -n 1 "$DIR/server.log")"

cd "$ROOT"
CLICKHOUSE_URL="http://127.0.0.1:$PORT" CLICKHOUSE_VALIDATION=on \
  cargo test --release --workspace --test clickhouse_sink --test youtube_fetcher --test api

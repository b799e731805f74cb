#!/usr/bin/env bash
# Fuzzes the API from its own OpenAPI document with schemathesis: no generated request may get a 5xx.
# Starts the release API on its own port (over the running `make services` stack), stops it after.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PORT="${SCHEMATHESIS_API_PORT:-18000}"
KEY="schemathesis-key"
EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-30}"

[[ -x "$VENV/bin/schemathesis" ]] || "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"

# The analytics reads need the ClickHouse tables; topics and schemas are needed by the writes.
"$ROOT/target/release/ugc-init" >/dev/null

LOG="$ROOT/.stack/log/api-schemathesis.log"
mkdir -p "$(dirname "$LOG")"
API_PORT="$PORT" API_KEYS="st:$KEY" RATE_LIMIT_PER_SECOND=0 RUST_LOG=warn \
  "$ROOT/target/release/api" >"$LOG" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/api/v1/healthcheck/ping" >/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "API did not start:"; tail -20 "$LOG"; exit 1; }
  sleep 0.1
done

"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
  --checks not_a_server_error \
  --header "X-Api-Key: $KEY" \
  --max-examples "$EXAMPLES" \
  --request-timeout 10 \
  --no-color

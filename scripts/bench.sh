#!/usr/bin/env bash
# `make bench`: load-tests the ingestion API with wrk over the running local stack and writes
# docs/benchmarks.md (figures, the exact commands, the machine). Benchmarks, not tests: nothing here
# fails on a slow result.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PORT="${BENCH_API_PORT:-18100}"
DURATION="${BENCH_DURATION:-15s}"
# The API's own default: one worker per core.
WORKERS="${BENCH_API_WORKERS:-$(nproc)}"
# Connections of the single-event runs: at 64 the rate is bounded by each request's wait for the
# ack (the producer's 2 ms linger and the broker's round trip), not by the machine.
CONNECTIONS="${BENCH_API_CONNECTIONS:-128}"
OUT="$ROOT/docs/benchmarks.md"

# On a machine as quiet as the stack allows: the local ClickHouse cluster of `make test-cluster`
# (four servers and ZooKeeper) costs a quarter of a core even idle; `make services-cluster` starts
# it again.
scripts/services-cluster.sh down >/dev/null 2>&1 || true

# The examples run first, while the memory broker is still small (Tansu slows down as it holds
# millions of records); each writes its section to target/bench/<part>.md, appended below the API
# section in name order.
rm -rf "$ROOT/target/bench"
# The Python peer of the sink bench (scripts/bench/python_peer.py), in the project venv.
"${VENV:-$ROOT/.venv}/bin/pip" install -q --disable-pip-version-check \
  "confluent-kafka==2.16.1" "fastavro==1.13.1" "clickhouse-driver==0.2.11"
cargo build -q --release -p api --example bare_api
for example in pipeline_bench sink_bench videos_bench documents_bench feed_bench images_bench; do
  echo "[bench] cargo run --release -p api --example $example" >&2
  cargo run -q --release -p api --example "$example"
done

# The API part on a fresh broker: Tansu's memory storage slows down as it fills, and the examples
# above leave millions of records on it (a Kafka broker's produce rate does not depend on what it
# holds).
scripts/services.sh restart-broker
target/release/ugc-init >/dev/null

command -v wrk >/dev/null || { echo "[bench] apt-get install wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }

API_PORT="$PORT" API_WORKERS="$WORKERS" API_KEYS="bench:bench-key" RATE_LIMIT_PER_SECOND=0 RUST_LOG=warn \
  target/release/api >"$ROOT/.stack/log/api-bench.log" 2>&1 &
api=$!
trap 'kill "$api" 2>/dev/null || true; wait "$api" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/api/v1/healthcheck/ping" >/dev/null && break; sleep 0.1; done

# CPU seconds (user + system) so far: of a process, of the broker, and of this shell's finished
# children (wrk among them), read around each run so the table below can say what a request cost
# each side.
ticks=$(getconf CLK_TCK)
cpu_of() { awk -v t="$ticks" '{printf "%.3f", ($14 + $15) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
broker_cpu() { local s=0 p; for p in $(pgrep -x tansu); do s=$(awk -v a="$s" -v b="$(cpu_of "$p")" 'BEGIN {print a + b}'); done; echo "$s"; }
# `times` runs in this shell (in a subshell it would count that subshell's children only).
children_cpu() { awk 'NR == 2 {for (i = 1; i <= 2; i++) {split($i, a, /[ms]/); s += a[1] * 60 + a[2]}} END {printf "%.3f", s}' "$1"; }

run() { # name, server pid, wrk args...
  local name="$1" server="$2"; shift 2
  echo "[bench] $name: wrk $*" >&2
  local s0 b0
  s0=$(cpu_of "$server"); b0=$(broker_cpu); times >/tmp/bench-times0
  wrk "$@" >"/tmp/bench-$name.txt" 2>&1
  times >/tmp/bench-times1
  cat "/tmp/bench-$name.txt" >&2
  echo "$(awk -v a="$(cpu_of "$server")" -v b="$s0" 'BEGIN {print a - b}') \
$(awk -v a="$(broker_cpu)" -v b="$b0" 'BEGIN {print a - b}') \
$(awk -v a="$(children_cpu /tmp/bench-times1)" -v b="$(children_cpu /tmp/bench-times0)" 'BEGIN {print a - b}')" >"/tmp/bench-$name.cpu"
}
# One row of the CPU table: name, what a request carries, events per request.
cpu_row() {
  local name="$1" what="$2" per="$3" requests
  requests=$(awk '/requests in/ {print $1}' "/tmp/bench-$name.txt")
  read -r server broker load <"/tmp/bench-$name.cpu"
  awk -v n="$requests" -v s="$server" -v b="$broker" -v w="$load" -v c="$(nproc)" -v e="$per" -v what="$what" 'BEGIN {
    us = 1e6 / n; t = (s + b + w) * us
    printf "| %s | %.1f | %.1f | %.1f | %.1f | %.0f requests/s (%.0f events/s) |\n", what, s * us, b * us, w * us, t, c * 1e6 / t, c * 1e6 / t * e
  }'
}
rps() { awk '/Requests\/sec/ {print $2}' "/tmp/bench-$1.txt"; }
pct() { awk -v p="$2%" '$1 == p {print $2}' "/tmp/bench-$1.txt"; }
non2xx() { awk '/Non-2xx/ {n = $5} END {print n + 0}' "/tmp/bench-$1.txt"; }

# Warm the registry cache and the consumer-less topics.
wrk -t1 -c4 -d2s -s scripts/bench/single.lua "http://127.0.0.1:$PORT/api/v1/movies/playback-event" >/dev/null 2>&1
SINGLE_CMD="wrk -t1 -c$CONNECTIONS -d$DURATION --latency -s scripts/bench/single.lua http://127.0.0.1:$PORT/api/v1/movies/playback-event"
run single "$api" $(echo "$SINGLE_CMD" | cut -d' ' -f2-)
BATCH_SIZE=1000
BATCH_CMD="BATCH_SIZE=$BATCH_SIZE wrk -t1 -c8 -d$DURATION --latency -s scripts/bench/batch.lua http://127.0.0.1:$PORT/api/v1/events/batch"
BATCH_SIZE=$BATCH_SIZE run batch "$api" $(echo "$BATCH_CMD" | cut -d' ' -f3-)

# The bare path: the same actix server and producer answering a POST by producing a fixed payload
# and awaiting the ack (api/examples/bare_api.rs), under the same wrk command.
BARE_PORT=$((PORT + 1))
BARE_PORT="$BARE_PORT" API_WORKERS="$WORKERS" RUST_LOG=warn \
  target/release/examples/bare_api >"$ROOT/.stack/log/bare-bench.log" 2>&1 &
bare=$!
trap 'kill "$api" "$bare" 2>/dev/null || true; wait "$api" "$bare" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf -X POST "http://127.0.0.1:$BARE_PORT/bare" >/dev/null && break; sleep 0.1; done
BARE_CMD="wrk -t1 -c$CONNECTIONS -d$DURATION --latency -s scripts/bench/single.lua http://127.0.0.1:$BARE_PORT/bare"
run bare "$bare" $(echo "$BARE_CMD" | cut -d' ' -f2-)
kill "$bare" 2>/dev/null || true

batch_rps=$(rps batch)
single_over_bare=$(awk -v a="$(rps single)" -v b="$(rps bare)" 'BEGIN {printf "%.2f", a / b}')
events_per_s=$(awk -v r="$batch_rps" -v n="$BATCH_SIZE" 'BEGIN {printf "%.0f", r * n}')
cpu=$(awk -F: '/model name/ {gsub(/^ +/, "", $2); print $2; exit}' /proc/cpuinfo)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)

cat >"$OUT" <<MD
# Benchmarks

Produced by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d), commit $(git rev-parse --short HEAD).
Machine: $(nproc) cores ($cpu), $mem. Everything runs on this one machine at once: the load generator
(wrk), the API, the Kafka-protocol broker (Tansu, memory storage), the schema registry, ClickHouse,
the MongoDB-wire server and Redis. Every figure is a 202 that Kafka acknowledged (\`acks=all\`,
idempotent producer) — the API never answers before the ack.

## Ingestion API

On a freshly started broker (its memory storage slows down as it fills; the parts below ran first).

| what | result | goal |
|---|---|---|
| single-event POSTs (\`/api/v1/movies/playback-event\`), requests/s | $(rps single) | >= 30,000 |
| bare path: the same server and producer, a fixed payload, no JSON, auth, validation or Avro (\`api/examples/bare_api.rs\`), requests/s | $(rps bare) | |
| single-event path / bare path | $single_over_bare | >= 0.8 |
| single-event POSTs, latency p50 / p99 | $(pct single 50) / $(pct single 99) | p99 < 10 ms |
| bare path, latency p50 / p99 | $(pct bare 50) / $(pct bare 99) | |
| batch POSTs of $BATCH_SIZE events (\`/api/v1/events/batch\`), events/s acked | $events_per_s ($batch_rps requests/s) | >= 250,000 |
| batch POSTs, latency p50 / p99 | $(pct batch 50) / $(pct batch 99) | |
| non-2xx answers (single / bare / batch) | $(non2xx single) / $(non2xx bare) / $(non2xx batch) | none |

CPU time per request in the same runs, microseconds (user + system from /proc; the load generator
is wrk). "cores / total" is the rate at which that work would keep all $(nproc) cores of this machine
busy:

| run | server | broker | wrk | total | cores / total |
|---|---|---|---|---|---|
$(cpu_row single "single-event POSTs" 1)
$(cpu_row bare "bare path" 1)
$(cpu_row batch "batch POSTs of $BATCH_SIZE events" "$BATCH_SIZE")

Commands (API started with \`API_WORKERS=$WORKERS RATE_LIMIT_PER_SECOND=0 RUST_LOG=warn\`, its
default of one worker per core; the bare path with the same \`API_WORKERS\`):

    $SINGLE_CMD
    $BARE_CMD
    $BATCH_CMD

MD

for part in "$ROOT"/target/bench/*.md; do cat "$part" >>"$OUT"; done
echo "[bench] wrote $OUT" >&2

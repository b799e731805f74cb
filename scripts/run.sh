#!/usr/bin/env bash
# Runs the pipeline's own processes in the foreground over the services `make services` started:
# the API, the ClickHouse sink, the Mongo sink, the feed fan-out, the image-resize worker, the views
# predictor (and the YouTube fetcher when YOUTUBE_API_KEYS is set). Ctrl-C (or SIGTERM) stops them
# gracefully; services keep running (`make services-down` stops those).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/target/release"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait
}
trap stop INT TERM EXIT

"$BIN/clickhouse-sink" & pids+=($!)
"$BIN/mongo-sink" & pids+=($!)
"$BIN/feed-fanout" & pids+=($!)
"$BIN/image-resize" & pids+=($!)
"$BIN/views-predictor" & pids+=($!)
if [[ -n "${YOUTUBE_API_KEYS:-}" ]]; then "$BIN/youtube-fetcher" & pids+=($!); fi
"$BIN/api" & pids+=($!)
echo "[run] API on http://${API_HOST:-127.0.0.1}:${API_PORT:-8000}; Ctrl-C stops the API and the consumers"
wait -n

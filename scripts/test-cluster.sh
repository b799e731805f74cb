#!/usr/bin/env bash
# `make test-cluster`: the ClickHouse suites on a local 2-shard x 2-replica cluster (Debian's
# ClickHouse 18.16 and ZooKeeper, started by scripts/services-cluster.sh): every table created
# ON CLUSTER (Replicated + Distributed), the sinks' delivery tests and the API's analytics, resend
# and video tests through the Distributed tables, then 200,000 events through API -> Kafka ->
# sinks with a replica SIGKILLed and restarted, compared with the single server. Run by `make test`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SCRIPT="$ROOT/scripts/services-cluster.sh"

"$SCRIPT" up
eval "$("$SCRIPT" env | sed 's/^/export /')"
export CLUSTER_SCRIPT="$SCRIPT"
export SINGLE_CLICKHOUSE_URL="http://127.0.0.1:${CLICKHOUSE_HTTP_PORT:-8123}"
export CRASH_TEST_EVENTS="${CRASH_TEST_EVENTS:-50000}"

cd "$ROOT"
echo "[test-cluster] the suites on cluster '$CLICKHOUSE_CLUSTER' ($CLICKHOUSE_URL)"
cargo test --release --workspace --test clickhouse_sink
cargo test --release --workspace --test api -- analytics:: resends:: videos::
echo "[test-cluster] 200,000 events with a replica SIGKILLed, against the single server"
cargo test --release --workspace --test api -- --ignored --exact --nocapture \
  cluster::a_cluster_with_a_replica_killed_stores_each_event_once_and_answers_as_one_server

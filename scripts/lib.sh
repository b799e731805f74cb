# Helpers shared by scripts/services.sh and scripts/services-cluster.sh (sourced after they set
# STACK, the directory of run/ and log/, and LOG_PREFIX).

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*"; }

die_with_log() { # name logfile
  log "FAILED: $1 did not become ready; last lines of $2:"
  tail -n 40 "$2" >&2 || true
  exit 1
}

running() { # name
  local pidf="$STACK/run/$1.pid"
  [[ -f "$pidf" ]] && kill -0 "$(cat "$pidf")" 2>/dev/null
}

start() { # name logfile command... ; records the pid
  local name="$1" logf="$2"; shift 2
  nohup "$@" >>"$logf" 2>&1 &
  echo $! >"$STACK/run/$name.pid"
}

stop() { # name [signal]: stops the process of the pid file, SIGKILL after 10 s, and forgets it
  local pidf="$STACK/run/$1.pid" signal="${2:-TERM}" pid
  [[ -f "$pidf" ]] || return 0
  pid="$(cat "$pidf")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "-$signal" "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    log "stopped $1 (pid $pid, SIG$signal)"
  fi
  rm -f "$pidf"
}

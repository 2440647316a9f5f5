#!/usr/bin/env bash
# Intake benchmarks (docs/benchmarks.md): the service on SQLite and on
# PostgreSQL against the bare decode-and-200 handler, in one run, on this
# machine. Every phase gets a fresh service process and a fresh database, so
# one phase's backlog (the worker still processing jobs) cannot slow the next.
#
# Usage: hack/bench-intake.sh [DURATION]   (default 10s per phase)
#
#        hack/bench-intake.sh ab [DURATION] [ROUNDS] (default 5s, 3 rounds)
#   Audit sealing A/B: latency at 1000 notifications/s (all new, 10 % new)
#   of the service with sealing and of the same code built with the tag
#   remediator_noseal (no sealing at all), interleaved round by round on
#   SQLite and PostgreSQL, each phase with the load average before it.
#   EXTRA_BIN=path adds a third binary to each round (e.g. an older commit).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=all
if [ "${1:-}" = ab ]; then mode=ab; shift; fi
dur=${1:-10s}
[ $mode = ab ] && dur=${1:-5s}
rounds=${2:-3}
work=$(mktemp -d /tmp/remediator-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/remediator" ./cmd/remediator
[ $mode = ab ] && go build -tags remediator_noseal -o "$work/remediator-noseal" ./cmd/remediator
go build -o "$work/loadgen" ./cmd/loadgen
go build -o "$work/testbed" ./cmd/testbed
echo "bench-token-$$" > "$work/token"
lg() { "$work/loadgen" "$@"; }

wait_ready() { for _ in $(seq 200); do curl -fsS "$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not ready: $1" >&2; return 1; }

port=9300
svc_pid=""
start_service() { # dsn [binary] → sets url
  port=$((port + 1))
  "${2:-$work/remediator}" serve --listen "127.0.0.1:$port" --store "$1" --webhook-token-file "$work/token" \
    --policies ./policies >>"$work/service.log" 2>&1 &
  svc_pid=$!
  pids+=("$svc_pid")
  wait_ready "http://127.0.0.1:$port"
  url="http://127.0.0.1:$port/webhook/alertmanager"
}
stop_service() { kill "$svc_pid"; wait "$svc_pid" 2>/dev/null || true; }


fresh_dsn() { # backend → echoes a DSN of an empty database
  local n; n=$(date +%s%N)
  case "$1" in
    sqlite) echo "sqlite://$work/db$n/remediator.db" ;;
    postgres)
      psql -q "$pgdsn" -c "CREATE DATABASE bench$n" >/dev/null
      echo "${pgdsn%/*}/bench$n?sslmode=disable" ;;
  esac
}

start_pg() {
  "$work/testbed" postgres --dir "$work/pg" > "$work/pg.dsn" & pids+=($!)
  for _ in $(seq 300); do [ -s "$work/pg.dsn" ] && break; sleep 0.1; done
  pgdsn=$(head -1 "$work/pg.dsn")
  [ -n "$pgdsn" ] || { echo "PostgreSQL did not start" >&2; exit 1; }
}

echo "== machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "== each line: one phase; notificationsPerSecond, latency percentiles in ms"

if [ $mode = ab ]; then
  start_pg
  bins=("$work/remediator-noseal" "$work/remediator")
  [ -n "${EXTRA_BIN:-}" ] && bins+=("$EXTRA_BIN")
  for r in $(seq "$rounds"); do
    for backend in sqlite postgres; do
      for ratio in 1 0.1; do
        for bin in "${bins[@]}"; do
          start_service "$(fresh_dsn $backend)" "$bin"
          printf '%s round %s %s new-ratio %s load %s: ' "$(basename "$bin")" "$r" "$backend" "$ratio" "$(cut -d' ' -f1 /proc/loadavg)"
          lg rate --url "$url" --token-file "$work/token" --rate 1000 --duration "$dur" --new-ratio "$ratio" |
            grep -o '"errors":[0-9]*\|"p50Ms":[0-9.]*\|"p99Ms":[0-9.]*' | tr '\n' ' '
          echo
          stop_service
        done
      done
    done
  done
  exit 0
fi
"$work/loadgen" bare --listen 127.0.0.1:9296 >/dev/null & pids+=($!)
sleep 0.5
echo "-- bare handler (decode + 200), throughput, 64 clients"
lg throughput --url http://127.0.0.1:9296/ --duration "$dur"
echo "-- bare handler, latency at 1000 notifications/s"
lg rate --url http://127.0.0.1:9296/ --rate 1000 --duration "$dur"

start_pg

for backend in sqlite postgres; do
  for ratio in 1 0.1; do
    start_service "$(fresh_dsn $backend)"
    echo "-- remediator on $backend, throughput, 64 clients, new-ratio $ratio"
    lg throughput --url "$url" --token-file "$work/token" --duration "$dur" --new-ratio "$ratio"
    stop_service
    start_service "$(fresh_dsn $backend)"
    echo "-- remediator on $backend, latency at 1000 notifications/s, new-ratio $ratio"
    lg rate --url "$url" --token-file "$work/token" --rate 1000 --duration "$dur" --new-ratio "$ratio"
    stop_service
  done
  start_service "$(fresh_dsn $backend)"
  echo "-- remediator on $backend, one notification with 10,000 new alerts"
  lg storm --url "$url" --token-file "$work/token" --alerts 10000
  echo "{\"peakRssMB\": $(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$svc_pid/status")}"
  stop_service
done

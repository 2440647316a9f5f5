#!/usr/bin/env bash
# Audit benchmarks (docs/benchmarks.md): for SQLite and PostgreSQL, 100k
# and 1M records: make them (auditbench fill: bulk events, then the
# store's own sealer), export them as CSV with the real CLIs under
# /usr/bin/time (rows/s and peak RSS of that process: the lean
# remediator-audit and `remediator audit`), export them in-process (rows/s
# without process start), and time the stats call.
#
# Usage: hack/bench-audit.sh [SIZES...]   (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@"); [ ${#sizes[@]} -gt 0 ] || sizes=(100000 1000000)
work=$(mktemp -d /tmp/remediator-bench-audit.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/remediator" ./cmd/remediator
go build -o "$work/remediator-audit" ./cmd/remediator-audit
go build -o "$work/auditbench" ./hack/auditbench
go build -o "$work/testbed" ./cmd/testbed
"$work/testbed" postgres --dir "$work/pg" > "$work/pg.dsn" & pids+=($!)
for _ in $(seq 300); do [ -s "$work/pg.dsn" ] && break; sleep 0.1; done
pgdsn=$(head -1 "$work/pg.dsn")
echo "bench-token-$$" > "$work/token"
port=9500
echo "== machine: $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "== baseline peak RSS of the CLI (remediator version): $(/usr/bin/time -f %M "$work/remediator" version 2>&1 >/dev/null | tail -1) KB"
echo "== baseline peak RSS of remediator-audit (--help): $(/usr/bin/time -f %M "$work/remediator-audit" --help 2>&1 >/dev/null | tail -1) KB"
for backend in ${BACKENDS:-sqlite postgres}; do
  for n in "${sizes[@]}"; do
    case $backend in
      sqlite) dsn="sqlite://$work/db-$n.db" ;;
      postgres) psql -q "$pgdsn" -c "CREATE DATABASE audit$n" >/dev/null; dsn="${pgdsn%/*}/audit$n?sslmode=disable" ;;
    esac
    echo "-- $backend, $n records"
    "$work/auditbench" fill -store "$dsn" -n "$n"
    /usr/bin/time -f '{"leanSeconds": %e, "leanPeakRssKB": %M}' "$work/remediator-audit" export --store "$dsn" \
      --start-date 2000-01-01 --out "$work/out.csv" 2>&1 | tail -1
    echo "{\"csvBytes\": $(stat -c %s "$work/out.csv"), \"csvLines\": $(wc -l < "$work/out.csv")}"
    /usr/bin/time -f '{"cliSeconds": %e, "cliPeakRssKB": %M}' "$work/remediator" audit export --store "$dsn" \
      --start-date 2000-01-01 --out "$work/out.csv" 2>&1 | tail -1
    "$work/auditbench" export -store "$dsn"
    # The service: its RSS before and its peak during GET /audit/export of everything.
    port=$((port + 1))
    "$work/remediator" serve --listen "127.0.0.1:$port" --store "$dsn" --webhook-token-file "$work/token" \
      --policies ./policies >>"$work/service.log" 2>&1 &
    svc=$!; pids+=("$svc")
    for _ in $(seq 200); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 1
    before=$(awk '/VmRSS/ {print $2}' "/proc/$svc/status"); hwm0=$(awk '/VmHWM/ {print $2}' "/proc/$svc/status")
    t0=$(date +%s.%N)
    curl -fsS -o /dev/null "http://127.0.0.1:$port/audit/export?format=csv&startDate=2000-01-01"
    t1=$(date +%s.%N)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$svc/status")
    echo "{\"serviceRssBeforeKB\": $before, \"serviceHwmBeforeKB\": $hwm0, \"serviceHwmAfterExportKB\": $hwm, \"httpExportSeconds\": $(echo "$t1 - $t0" | bc)}"
    kill "$svc"; wait "$svc" 2>/dev/null || true
    "$work/auditbench" stats -store "$dsn"
    rm -f "$work/out.csv"
  done
done

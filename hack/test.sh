#!/usr/bin/env bash
# Runs every Go test with the race detector against one shared test bed
# (Kubernetes control plane, PostgreSQL), started here and stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/testbed ./cmd/testbed
dir=$(mktemp -d /tmp/remediator-testbed.XXXXXX)
stop() { bin/testbed down --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap stop EXIT
echo "test: starting the test bed in $dir"
eval "$(bin/testbed up --dir "$dir" --detach)"
export REMEDIATOR_TESTBED
go test -race -count=1 -timeout 30m ./...

#!/usr/bin/env bash
# Backs up the store named by STORE (default: the service's default SQLite
# file) into BACKUP_DIR (default ./backups), online: the service may keep
# running. docs/operations.md, "Backups".
#
#   SQLite:     VACUUM INTO a new file (consistent snapshot), then
#               PRAGMA integrity_check on the copy.
#   PostgreSQL: pg_dump --format=custom, then pg_restore --list on the dump.
#
# Usage: make backup-db [STORE=sqlite://PATH | STORE=postgres://...] [BACKUP_DIR=DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
store=${STORE:-${REMEDIATOR_STORE:-sqlite://./data/remediator.db}}
dir=${BACKUP_DIR:-./backups}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$dir"
case "$store" in
  sqlite://*|sqlite3://*)
    src=${store#*://}
    out="$dir/remediator-$stamp.db"
    go run ./hack/sqlite-backup "$src" "$out"
    ;;
  postgres://*|postgresql://*)
    out="$dir/remediator-$stamp.dump"
    pg_dump --format=custom --no-owner --file="$out" "$store"
    pg_restore --list "$out" >/dev/null
    echo "backup $out: $(pg_restore --list "$out" | grep -c 'TABLE DATA') tables"
    ;;
  *) echo "backup-db: unknown store DSN scheme: ${store%%://*}" >&2; exit 2 ;;
esac
ls -l "$out"

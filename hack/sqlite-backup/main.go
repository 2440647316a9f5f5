// Command sqlite-backup copies a live SQLite database to a new file with
// VACUUM INTO (a consistent snapshot, taken while the service keeps
// writing: WAL readers do not block the writer), then checks the copy with
// PRAGMA integrity_check. Used by hack/backup-db.sh (make backup-db).
//
// Usage: go run ./hack/sqlite-backup SOURCE.db DEST.db
package main

import (
	"database/sql"
	"fmt"
	"os"

	_ "modernc.org/sqlite"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: sqlite-backup SOURCE.db DEST.db")
		os.Exit(2)
	}
	if err := backup(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "sqlite-backup:", err)
		os.Exit(1)
	}
}

func backup(src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return err
	}
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%s exists; not overwriting", dst)
	}
	db, err := sql.Open("sqlite", "file:"+src+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(`VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("VACUUM INTO %s: %w", dst, err)
	}
	out, err := sql.Open("sqlite", "file:"+dst+"?mode=ro")
	if err != nil {
		return err
	}
	defer out.Close()
	var ok string
	if err := out.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		return fmt.Errorf("integrity check of %s: %q %v", dst, ok, err)
	}
	var n int64
	if err := out.QueryRow(`SELECT count(*) FROM audit`).Scan(&n); err != nil {
		return fmt.Errorf("backup %s: %w", dst, err)
	}
	fmt.Printf("backup %s: integrity ok, %d audit records\n", dst, n)
	return nil
}

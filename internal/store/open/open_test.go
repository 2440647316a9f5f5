package open

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "a", "b", "abs.db")
	s, err := Open(context.Background(), "sqlite://"+abs)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(abs); err != nil {
		t.Fatalf("database file: %v", err)
	}

	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	s, err = Open(context.Background(), DefaultDSN)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "data", "remediator.db")); err != nil {
		t.Fatalf("relative database file: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	for _, dsn := range []string{"mysql://u:secret@h/db", "/plain/path.db", "sqlite://"} {
		_, err := Open(context.Background(), dsn)
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

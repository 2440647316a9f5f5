package testbed_test

import (
	"context"
	"os"
	"os/exec"
)

func psql(ctx context.Context, dsn, query string) (string, error) {
	bin := "/usr/lib/postgresql/15/bin/psql"
	if _, err := os.Stat(bin); err != nil {
		bin = "psql"
	}
	out, err := exec.CommandContext(ctx, bin, "-X", "-At", "-d", dsn, "-c", query).CombinedOutput()
	return string(out), err
}

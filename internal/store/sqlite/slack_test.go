package sqlite_test

import (
	"testing"

	"github.com/remediator/remediator/internal/store/storetest"
)

func TestSlackState(t *testing.T) { storetest.Slack(t, backend()) }

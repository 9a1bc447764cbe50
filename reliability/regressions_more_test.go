package reliability

// Regression cases for two more bugs the suite found (fixed after the
// first batch in regressions_test.go).

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func init() {
	// A record stamped after 9999 is stored in partition <service>_99991231
	// (keys clamp to 9999-12-31T23:59:59.999), and query.Logs returns it:
	// schema.RowKeyRange used to clamp Until to that same instant and keep
	// only ULID times before it, so the record was always out of range.
	hostileCases = append(hostileCases, recordTime(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)))
}

// Makefile: when a fuzz target finds a crasher, `make fuzz` must show which
// input failed and why. It used to rerun the target with -fuzztime=1x,
// which executes the seed, not the crasher, and printed only "PASS"; it
// now replays testdata (the crasher included) with plain go test.
func TestMakefileFuzzShowsFailure(t *testing.T) {
	root, _ := filepath.Abs("..")
	_, out, err := fuzzCrash(t, filepath.Join(root, "Makefile"))
	if err == nil || !strings.Contains(out, "crash on") {
		t.Errorf("make fuzz (err %v) does not show the failure:\n%s", err, out)
	}
}

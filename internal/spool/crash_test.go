package spool

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The crash test re-executes the test binary as a child that appends
// records from several goroutines and prints each index once its Append has
// returned ("A i"), and each index once its Ack has returned ("K i"). The
// parent kills it with SIGKILL mid-stream, then reopens the spool.
const (
	crashDirEnv    = "TABLELOG_SPOOL_CRASH_DIR"
	crashPolicyEnv = "TABLELOG_SPOOL_CRASH_POLICY"
	crashBaseEnv   = "TABLELOG_SPOOL_CRASH_BASE"
	crashWorkers   = 4
	crashAckLag    = 40 // each worker acks the record it appended crashAckLag appends earlier
)

// TestCrashHelper is the child process of TestCrash; it does nothing in a
// normal run.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrash")
	}
	pol, _ := strconv.Atoi(os.Getenv(crashPolicyEnv))
	base, _ := strconv.Atoi(os.Getenv(crashBaseEnv))
	s, err := Open(Options{Dir: dir, SegmentBytes: 32 << 10, Sync: SyncPolicy(pol)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Stdout.WriteString("READY\n")
	for w := range crashWorkers {
		go func() {
			var ring [crashAckLag]Ticket
			for k := 0; ; k++ {
				i := base + w + crashWorkers*k
				tk, err := s.Append(testRec(i))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				os.Stdout.WriteString("A " + strconv.Itoa(i) + "\n") // one write(2), atomic on a pipe
				if k >= crashAckLag {
					if err := s.Ack(ring[k%crashAckLag]); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(3)
					}
					os.Stdout.WriteString("K " + strconv.Itoa(i-crashWorkers*crashAckLag) + "\n")
				}
				ring[k%crashAckLag] = tk
			}
		}()
	}
	select {}
}

// crashRun runs one child on dir until it has reported at least appends
// appended records, kills it with SIGKILL and returns what it reported.
// While the child holds the spool, it also checks that Open in this
// process fails with ErrLocked.
//
// inflight holds, for each worker, the record whose Append or Ack may have
// been under way at the kill: the next record to append, and the record
// acknowledged after the last reported append (its segment may be gone).
func crashRun(t *testing.T, dir string, pol SyncPolicy, base, appends int) (appended, acked map[int]bool, inflightAppend, inflightAck []int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashDirEnv+"="+dir,
		crashPolicyEnv+"="+strconv.Itoa(int(pol)),
		crashBaseEnv+"="+strconv.Itoa(base))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()

	appended, acked = map[int]bool{}, map[int]bool{}
	lastK := make([]int, crashWorkers) // per worker: appends reported
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if line == "READY" {
			if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrLocked) {
				t.Errorf("Open while the child holds the spool: %v", err)
			}
			continue
		}
		kind, num, ok := strings.Cut(line, " ")
		i, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue // output of the testing package
		}
		switch kind {
		case "A":
			appended[i] = true
			lastK[(i-base)%crashWorkers]++
		case "K":
			acked[i] = true
		}
		if !killed && len(appended) >= appends {
			cmd.Process.Signal(os.Kill) // SIGKILL; keep reading what it wrote before dying
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited early: %v\n%s", err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); ok && !ws.Signaled() {
		t.Fatalf("child was not killed by a signal: %v\n%s", err, stderr.String())
	}
	for w, k := range lastK {
		inflightAppend = append(inflightAppend, base+w+crashWorkers*k)
		if k > crashAckLag {
			inflightAck = append(inflightAck, base+w+crashWorkers*(k-1-crashAckLag))
		}
	}
	return appended, acked, inflightAppend, inflightAck
}

// TestCrash: after SIGKILL, reopening replays every record whose Append had
// returned and was not acknowledged, plus possibly acknowledged ones (replay
// is at-least-once) and the ones in flight at the kill, nothing else, each
// once, and never damaged data. Two runs share the directory, so the second
// child also starts from the first one's leftovers.
func TestCrash(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("needs SIGKILL")
	}
	for _, pol := range []SyncPolicy{SyncInterval, SyncEveryRecord} {
		t.Run(pol.String(), func(t *testing.T) {
			dir := t.TempDir()
			appended, acked := map[int]bool{}, map[int]bool{}
			allowed := map[int]bool{}
			for round := range 2 {
				a, k, inflightAppend, inflightAck := crashRun(t, dir, pol, round*10_000_000, 1500)
				for i := range a {
					appended[i], allowed[i] = true, true
				}
				for i := range k {
					acked[i] = true
				}
				for _, i := range inflightAppend {
					allowed[i] = true
				}
				for _, i := range inflightAck {
					acked[i] = true // may or may not have happened
				}
				t.Logf("round %d: %d appended, %d acked", round, len(a), len(k))
			}
			s := mustOpen(t, Options{Dir: dir})
			seen := map[int]bool{}
			var extraAcked, extraInflight int
			err := s.Pending(func(_ Ticket, r Record) bool {
				i := recIndex(t, r) // fails on any damaged record
				if seen[i] {
					t.Errorf("record %d replayed twice", i)
				}
				seen[i] = true
				if !allowed[i] {
					t.Errorf("record %d replayed but never appended", i)
				}
				if acked[i] {
					extraAcked++
				} else if !appended[i] {
					extraInflight++
				}
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			missing := 0
			for i := range appended {
				if !acked[i] && !seen[i] {
					missing++
					if missing < 10 {
						t.Errorf("record %d: Append returned, not acknowledged, not replayed", i)
					}
				}
			}
			st := s.Stats()
			t.Logf("replayed %d (%d acknowledged before the kill, %d in flight), corrupt regions %d; stats %+v",
				len(seen), extraAcked, extraInflight, st.Corrupt, st)
			if missing > 0 {
				t.Fatalf("%d records lost", missing)
			}
			if st.Corrupt > 2 { // at most a torn frame at each kill
				t.Fatalf("%d corrupt regions after two kills", st.Corrupt)
			}
		})
	}
}

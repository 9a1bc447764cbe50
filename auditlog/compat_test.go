package auditlog

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/schema"
)

// The suite runs against tablelog.Client (newWriter and verify replace the
// harness's *aztables.Clients with their twins). This file is the smaller
// compatibility suite: an audit trail written and verified through
// *aztables.Client itself, which auditlog keeps accepting.

var (
	_ Table     = (*aztables.Client)(nil)
	_ ReadTable = (*aztables.Client)(nil)
)

// TestCompatAztablesChain: two Writers on *aztables.Clients, as two
// processes, record concurrently (group commit, add-only writers with a
// read-only ReadTable, through the strict proxy); the trail holds every
// event once with seqs 1..n, Verify through an *aztables.Client reports it
// intact, and a deleted event in the middle is a break.
func TestCompatAztablesChain(t *testing.T) {
	t.Parallel()
	e := env(t)
	tbl := e.NewTable(t)
	name := tableName(t, tbl)
	key := []byte("0123456789abcdef0123456789abcdef")
	var ws []*Writer
	for range 2 {
		// The full-rights client reads; e.AddOnlyTable would need a
		// ReadTable of the caller's (readOnlyTable makes tablelog.Clients).
		ws = append(ws, newSDKWriter(t, e.Table(t, name), Options{Key: key}))
	}
	got := recordEach(t, ws, 300)
	for _, w := range ws {
		if st := w.Stats(); st.Events != 300 || st.Transactions >= 300 {
			t.Fatalf("stats %+v: want 300 events in fewer transactions", st)
		}
	}

	evs := events(t, e.DirectTable(t, name))
	if len(evs) != len(got) {
		t.Fatalf("%d events stored; want %d", len(evs), len(got))
	}
	seqs := make([]bool, len(evs)+1)
	for _, r := range evs {
		if r.Seq < 1 || r.Seq > int64(len(evs)) || seqs[r.Seq] {
			t.Fatalf("seq %d out of range or taken twice", r.Seq)
		}
		seqs[r.Seq] = true
	}
	rep := verifySDK(t, tbl, VerifyOptions{Key: key})
	if !rep.OK() || rep.Checked != len(got) || rep.Head.Seq != int64(len(got)) {
		t.Fatalf("Verify through *aztables.Client: checked %d, head %d, breaks %v", rep.Checked, rep.Head.Seq, rep.Breaks)
	}

	// Hiding an event from the middle of the trail is found.
	var victim schema.AuditRecord
	for _, r := range evs {
		if r.Seq == int64(len(got)/2) {
			victim = r
		}
	}
	if _, err := e.DirectTable(t, name).DeleteEntity(context.Background(), victim.PartitionKey, victim.RowKey, nil); err != nil {
		t.Fatal(err)
	}
	rep = verifySDK(t, tbl, VerifyOptions{Key: key})
	if rep.OK() || len(rep.Breaks) == 0 {
		t.Fatalf("Verify through *aztables.Client after deleting seq %d: OK (%+v)", victim.Seq, rep)
	}
}

package auditlog_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/query"
)

// auditTable returns a client for the "audit" table of the account in
// AUDIT_CONNECTION_STRING (the examples compile but, needing an account,
// do not run under go test; the package's tests run the same calls against
// Azurite).
func auditTable() *tablelog.Client {
	c, err := tablelog.NewClientFromConnectionString(os.Getenv("AUDIT_CONNECTION_STRING"), "audit", nil)
	if err != nil {
		log.Fatal(err)
	}
	return c
}

func Example() {
	ctx := context.Background()
	table := auditTable()
	key := []byte(os.Getenv("AUDIT_HMAC_KEY")) // from a key vault, not from the table's account

	w, err := auditlog.New(table, auditlog.Options{Service: "billing", Key: key})
	if err != nil {
		log.Fatal(err)
	}
	// Record returns once the event is stored.
	ev, err := w.Record(ctx, auditlog.Event{
		Actor: "alice", Action: "invoice.delete", Target: "inv-42",
		Outcome: auditlog.Success, Reason: "customer request",
		SourceIP: "203.0.113.7", RequestID: "req-1",
		Attrs: map[string]any{"amount": 120},
	})
	if err != nil {
		log.Fatal(err) // not stored (or, with ErrOutcomeUnknown, maybe stored: look up ev.ID)
	}
	fmt.Println("stored as seq", ev.Seq, "hash", ev.Hash)

	// Read it back, newest first.
	r := query.New(table)
	for e, err := range r.Audit(ctx, query.Audit{Service: "billing", Actor: "alice", Since: time.Now().Add(-time.Hour)}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(e.Time, e.Actor, e.Action, e.Target, e.Outcome, e.Seq, e.Hash)
	}
}

// Verify the whole trail, and keep its head somewhere the table's writers
// cannot reach; the next verification passes it back to catch a truncated
// or re-hashed tail.
func ExampleVerify() {
	ctx := context.Background()
	key := []byte(os.Getenv("AUDIT_HMAC_KEY"))
	var lastHead auditlog.Head // loaded from wherever it was kept

	rep, err := auditlog.Verify(ctx, auditTable(), auditlog.VerifyOptions{Service: "billing", Key: key, ExpectedHead: lastHead})
	if err != nil {
		log.Fatal(err) // the trail could not be read (or the key is missing)
	}
	for _, b := range rep.Breaks {
		fmt.Println(b) // e.g. "deleted: seq 12..12 (1): seq 11 is followed by seq 13"
	}
	fmt.Printf("%d events checked, head %d:%s, ok=%v\n", rep.Checked, rep.Head.Seq, rep.Head.Hash, rep.OK())
}

// A writer whose table credential may only add entities (an account SAS
// with ss=t&srt=o&sp=a) reads the chain head through a read-only client:
// neither can update or delete anything.
func ExampleOptions_readTable() {
	addOnly, err := tablelog.NewClientWithNoCredential(os.Getenv("AUDIT_ADD_ONLY_TABLE_SAS_URL"), nil)
	if err != nil {
		log.Fatal(err)
	}
	readOnly, err := tablelog.NewClientWithNoCredential(os.Getenv("AUDIT_READ_ONLY_TABLE_SAS_URL"), nil)
	if err != nil {
		log.Fatal(err)
	}
	w, err := auditlog.New(addOnly, auditlog.Options{Service: "billing", ReadTable: readOnly})
	if err != nil {
		log.Fatal(err)
	}
	_, err = w.Record(context.Background(), auditlog.Event{Actor: "cron", Action: "report.export", Outcome: auditlog.Success})
	if err != nil {
		log.Fatal(err)
	}
}

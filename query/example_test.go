package query_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/query"
)

// logsTable returns a client for the logs table from a connection string in
// the environment (Azurite's or a real account's).
func logsTable() *tablelog.Client {
	logs, err := tablelog.NewClientFromConnectionString(os.Getenv("TABLELOG_CONNECTION_STRING"), "logs", nil)
	if err != nil {
		log.Fatal(err)
	}
	return logs
}

// Read the warnings and errors of one user in the last hour, newest first.
func ExampleReader_Logs() {
	ctx := context.Background()
	r := query.New(logsTable())
	for rec, err := range r.Logs(ctx, query.Logs{
		Service:  "checkout",
		Since:    time.Now().Add(-time.Hour),
		MinLevel: slog.LevelWarn,
		Where:    query.Eq("user_id", "u-1"),
		Contains: "timeout",
		Limit:    100,
	}) {
		if errors.Is(err, query.ErrTableNotFound) {
			log.Fatal("no logs table yet: has the service written anything?")
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Time.Format(time.RFC3339Nano), rec.Level, rec.Message, rec.Fields)
	}
}

// Print the last 20 records, oldest first, then follow new ones.
func ExampleReader_Follow() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	r := query.New(logsTable())
	q := query.Logs{Service: "checkout", MinLevel: query.AllLevels}
	last, err := r.Tail(ctx, q, 20)
	if err != nil {
		log.Fatal(err)
	}
	shown := map[ulid.ULID]bool{}
	for _, rec := range last {
		shown[rec.ID] = true
		fmt.Println(rec.Time.Format(time.TimeOnly), rec.Level, rec.Message)
	}
	if n := len(last); n > 0 {
		// Continue from the last record shown, without a gap: Since is
		// inclusive, so skip what Tail already printed.
		q.Since = last[n-1].Time
	}
	for rec, err := range r.Follow(ctx, q, query.FollowOptions{Poll: time.Second}) {
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return
			}
			log.Print(err) // throttling or an outage: Follow keeps polling
			continue
		}
		if !shown[rec.ID] {
			fmt.Println(rec.Time.Format(time.TimeOnly), rec.Level, rec.Message)
		}
	}
}

// List the services in the table and the days each one logged.
func ExampleReader_Services() {
	ctx := context.Background()
	r := query.New(logsTable())
	services, err := r.Services(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range services {
		days, err := r.Days(ctx, s)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(s, len(days), "days")
	}
}

// Filters are built from typed values; user input can never change their
// structure.
func ExampleEq() {
	userInput := "alice' or 'a' eq 'a"
	f := query.And(
		query.Eq("user", userInput),
		query.Ge("status", 500),                        // Go ints are Edm.Int64: 500L
		query.Ge(query.ColSeverity, 4),                 // Severity is Edm.Int32
		query.Eq(query.Field("req", "method"), "POST"), // a field in slog group "req"
		query.Eq("http.method", "GET"),                 // any key: mapped to its column name
		query.Or(query.Eq("region", "eu"), query.Not(query.Eq("beta", true))),
	)
	fmt.Println(f)
	fmt.Println(query.Eq("when", make(chan int)).Err())
	// Output:
	// user eq 'alice'' or ''a'' eq ''a' and status ge 500L and Severity ge 4 and req__method eq 'POST' and http_x2E_method eq 'GET' and (region eq 'eu' or not (beta eq true))
	// tablelog/query: invalid query: invalid filter: when eq: unsupported value type chan int
}

func ExampleLiteral() {
	for _, v := range []any{"it's", 42, query.Int32(42), 2.0, true,
		time.Date(2025, 11, 25, 10, 30, 0, 0, time.UTC), []byte{0xca, 0xfe}} {
		s, _ := query.Literal(v)
		fmt.Println(s)
	}
	// Output:
	// 'it''s'
	// 42L
	// 42
	// 2.0
	// true
	// datetime'2025-11-25T10:30:00.0000000Z'
	// X'cafe'
}

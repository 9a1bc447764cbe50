// Command follow is a library-level live tail: it writes a few records in
// the background and prints every record of the service as it is stored,
// like `tablelog tail -f`, until interrupted or -for has passed.
//
//	go run ./examples/follow -for 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/query"
	"github.com/tablelog/tablelog/sink"
)

func main() {
	service := flag.String("s", "follow-example", "service to follow")
	dur := flag.Duration("for", 10*time.Second, "how long to follow (0: until Ctrl-C)")
	write := flag.Bool("write", true, "also write a record every 500ms, to have something to see")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}

	// The account from $TABLELOG_CONNECTION_STRING, else the local emulator.
	cs := os.Getenv("TABLELOG_CONNECTION_STRING")
	if cs == "" {
		cs = "UseDevelopmentStorage=true"
	}
	logs, err := tablelog.NewClientFromConnectionString(cs, "logs", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	if *write {
		s, err := sink.New(logs, sink.Options{Service: *service, FlushInterval: 200 * time.Millisecond})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer s.Close(context.Background())
		log := slog.New(s.Handler(nil))
		go func() {
			for i := 0; ctx.Err() == nil; i++ {
				log.Info("tick", "n", i)
				time.Sleep(500 * time.Millisecond)
			}
		}()
	}

	r := query.New(logs)
	for rec, err := range r.Follow(ctx, query.Logs{Service: *service}, query.FollowOptions{Poll: 500 * time.Millisecond}) {
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			fmt.Fprintln(os.Stderr, "follow:", err)
			continue
		}
		fmt.Printf("%s %-5s %s %v\n", rec.Time.Local().Format("15:04:05.000"), rec.Level, rec.Message, rec.Fields)
	}
}

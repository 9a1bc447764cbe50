// Command slog uses tablelog as the default log/slog handler of a program:
// every slog call goes to Azure Table Storage (or the local emulator).
//
//	go run ./examples/slog
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/sink"
)

func main() {
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
	s, err := sink.New(logs, sink.Options{
		Service:       "slog-example",
		FlushInterval: 500 * time.Millisecond,
		Overflow:      sink.DropNewest, // never block the program; drops are counted in Stats
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Flush before exit: Close returns an error naming how many records were not stored.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		fmt.Printf("stats: %+v\n", s.Stats())
	}()

	slog.SetDefault(slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug, AddSource: true})))

	slog.Info("service starting", "version", "1.4.2", "pid", os.Getpid())
	db := slog.With(slog.Group("db", "system", "postgres", "host", "db-1"))
	for i := 0; i < 20; i++ {
		db.Debug("query", "rows", i*3, "took", time.Duration(i)*time.Millisecond)
	}
	slog.Warn("cache miss ratio high", "ratio", 0.42)
	slog.Info("service stopping")
}

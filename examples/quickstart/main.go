// Command quickstart logs through zap and log/slog into Azure Table Storage
// (the local Azurite emulator unless TABLELOG_CONNECTION_STRING is set), then
// reads the newest records back.
//
//	make demo                    # starts Azurite and runs this
//	go run ./examples/quickstart # against a running emulator or $TABLELOG_CONNECTION_STRING
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/query"
	"github.com/tablelog/tablelog/sink"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The account from $TABLELOG_CONNECTION_STRING, else the local emulator.
	cs := os.Getenv("TABLELOG_CONNECTION_STRING")
	if cs == "" {
		fmt.Fprintln(os.Stderr, "quickstart: no TABLELOG_CONNECTION_STRING; using the local emulator at 127.0.0.1:10002")
		cs = "UseDevelopmentStorage=true"
	}
	logs, err := tablelog.NewClientFromConnectionString(cs, "logs", nil)
	if err != nil {
		return err
	}

	// One Sink per service and table; it creates the table on first use.
	s, err := sink.New(logs, sink.Options{Service: "quickstart"})
	if err != nil {
		return err
	}

	// zap: the sink is a zapcore.Core.
	logger := zap.New(s.Core(zapcore.InfoLevel), zap.AddCaller()).Named("checkout")
	for i := 0; i < 200; i++ {
		logger.Info("order placed",
			zap.Int("order", 1000+i),
			zap.String("user_id", fmt.Sprintf("u-%d", i%7)),
			zap.Duration("took", time.Duration(i)*time.Millisecond),
			zap.Float64("amount", 9.99+float64(i)))
	}
	logger.Warn("payment slow", zap.String("provider", "acme"), zap.Int("status", 504))

	// log/slog: the sink is an slog.Handler.
	slogger := slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelInfo}))
	req := slogger.WithGroup("req").With("method", "POST", "path", "/cart")
	for i := 0; i < 100; i++ {
		req.Info("cart updated", "items", i%5+1, "user_id", fmt.Sprintf("u-%d", i%7))
	}
	slogger.Error("checkout failed", "err", errors.New("card declined"), "user_id", "u-3")

	// Close drains the buffer: no error means every record is stored.
	if err := s.Close(ctx); err != nil {
		return err
	}
	st := s.Stats()
	fmt.Printf("wrote %d records (%d retries, %d dropped) to table %q, partition quickstart_%s\n",
		st.Written, st.Retries, st.Dropped, "logs", time.Now().UTC().Format("20060102"))

	// Read the newest five back.
	r := query.New(logs)
	recs, err := r.Tail(ctx, query.Logs{Service: "quickstart"}, 5)
	if err != nil {
		return err
	}
	fmt.Println("newest records:")
	for _, rec := range recs {
		fmt.Printf("  %s %-5s %-16s %v\n", rec.Time.Format("15:04:05.000000"), rec.Level, rec.Message, rec.Fields)
	}
	return nil
}

// Command demo writes a few days of sample logs (services checkout and
// billing, through the sink's zap core and slog handler) and an audit trail
// (service billing) for trying the CLI:
//
//	TABLELOG_CONNECTION_STRING=... go run ./cmd/tablelog/testdata/demo
//
// Without TABLELOG_CONNECTION_STRING it writes to the local emulator.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/internal/account"
	"github.com/tablelog/tablelog/sink"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, _ := account.ConnectionString(os.Getenv)
	logs, err := account.Table(cs, "logs")
	if err != nil {
		return err
	}
	audit, err := account.Table(cs, "audit")
	if err != nil {
		return err
	}
	for _, c := range []*tablelog.Client{logs, audit} {
		if _, err := c.CreateTable(ctx, nil); err != nil && !isExists(err) {
			return err
		}
	}
	now := time.Now().UTC()

	checkout, err := sink.New(logs, sink.Options{Service: "checkout"})
	if err != nil {
		return err
	}
	core := checkout.Core(zapcore.DebugLevel)
	write := func(t time.Time, lvl zapcore.Level, logger, msg string, fields ...zap.Field) {
		_ = core.Write(zapcore.Entry{Level: lvl, Time: t, LoggerName: logger, Message: msg}, fields)
	}
	// Old days, for prune.
	for d := 40; d >= 38; d-- {
		day := now.AddDate(0, 0, -d)
		for i := range 3 {
			write(day.Add(time.Duration(i)*time.Minute), zapcore.InfoLevel, "http", "request served",
				zap.String("method", "GET"), zap.Int("status", 200), zap.Int("i", i))
		}
	}
	t := now.Add(-10 * time.Minute)
	write(t, zapcore.InfoLevel, "http", "request served", zap.String("method", "GET"), zap.String("path", "/cart"), zap.Int("status", 200), zap.String("user_id", "u-1"), zap.Duration("took", 12*time.Millisecond))
	write(t.Add(2*time.Second), zapcore.DebugLevel, "cart", "cart loaded", zap.String("user_id", "u-1"), zap.Int("items", 3))
	write(t.Add(5*time.Second), zapcore.WarnLevel, "http", "slow request", zap.String("method", "POST"), zap.String("path", "/pay"), zap.Int("status", 200), zap.String("user_id", "u-1"), zap.Float64("seconds", 2.5))
	write(t.Add(9*time.Second), zapcore.ErrorLevel, "payment", "charge failed", zap.String("user_id", "u-2"), zap.Int("status", 502), zap.Error(errors.New("card issuer timeout")), zap.Strings("retries", []string{"1s", "2s"}))
	write(t.Add(12*time.Second), zapcore.InfoLevel, "http", "request served", zap.String("method", "POST"), zap.String("path", "/pay"), zap.Int("status", 503), zap.String("user_id", "u-2"))

	billing, err := sink.New(logs, sink.Options{Service: "billing"})
	if err != nil {
		return err
	}
	h := billing.Handler(&slog.HandlerOptions{Level: slog.LevelDebug})
	rec := func(t time.Time, lvl slog.Level, msg string, attrs ...slog.Attr) {
		r := slog.NewRecord(t, lvl, msg, 0)
		r.AddAttrs(attrs...)
		_ = h.Handle(ctx, r)
	}
	rec(t.Add(3*time.Second), slog.LevelInfo, "invoice created", slog.String("invoice", "inv-42"), slog.Group("req", slog.String("method", "POST"), slog.String("id", "req-7")), slog.Int("amount", 120))
	rec(t.Add(7*time.Second), slog.LevelWarn, "invoice overdue", slog.String("invoice", "inv-17"), slog.Int("days", 12))

	for _, s := range []*sink.Sink{checkout, billing} {
		if err := s.Close(ctx); err != nil {
			return err
		}
	}

	w, err := auditlog.New(audit, auditlog.Options{Service: "billing"})
	if err != nil {
		return err
	}
	for _, ev := range []auditlog.Event{
		{Actor: "alice", Action: "invoice.create", Target: "inv-42", Outcome: auditlog.Success, SourceIP: "203.0.113.7", RequestID: "req-7", Attrs: map[string]any{"amount": 120}},
		{Actor: "bob", Action: "invoice.delete", Target: "inv-17", Outcome: auditlog.Denied, Reason: "not the owner", SourceIP: "198.51.100.4"},
		{Actor: "alice", Action: "invoice.delete", Target: "inv-17", Outcome: auditlog.Success, Reason: "customer request", SourceIP: "203.0.113.7", RequestID: "req-9"},
	} {
		if _, err := w.Record(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

func isExists(err error) bool { return strings.Contains(err.Error(), "TableAlreadyExists") }

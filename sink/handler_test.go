package sink

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// Integration tests of the slog handler against Azurite through the strict
// proxy: slogtest's conformance suite and the handler's own contracts.

// asSlogMap turns a stored entity back into the map slogtest expects.
func asSlogMap(e schema.Entity) map[string]any {
	m := map[string]any{}
	for k, v := range e.Fields {
		m[k] = v
	}
	if !e.Time.IsZero() {
		m[slog.TimeKey] = e.Time
	}
	m[slog.LevelKey] = e.Level
	m[slog.MessageKey] = e.Msg
	if e.Caller != "" {
		m[slog.SourceKey] = e.Caller
	}
	return m
}

// TestHandlerSlogtest runs slogtest against tablelog.Client and, for
// compatibility, *aztables.Client.
func TestHandlerSlogtest(t *testing.T) {
	t.Run("tablelog", func(t *testing.T) { testHandlerSlogtest(t, newSink) })
	t.Run("aztables", func(t *testing.T) { testHandlerSlogtest(t, newSDKSink) })
}

func testHandlerSlogtest(t *testing.T, mk func(testing.TB, Table, Options) (*Sink, *errs)) {
	env := azurite.Get(t)
	var s *Sink
	var tbl *aztables.Client
	slogtest.Run(t, func(t *testing.T) slog.Handler {
		tbl = env.NewTable(t)
		s, _ = mk(t, tbl, Options{FlushInterval: time.Hour})
		return s.Handler(nil)
	}, func(t *testing.T) map[string]any {
		if err := s.Flush(ctxT(t, 30*time.Second)); err != nil {
			t.Fatal(err)
		}
		logs, _ := readAll(t, tbl)
		if len(logs) != 1 {
			t.Fatalf("%d entities, want 1", len(logs))
		}
		return asSlogMap(logs[0])
	})
}

// countingValuer counts its LogValue calls.
type countingValuer struct{ n atomic.Int32 }

func (c *countingValuer) LogValue() slog.Value {
	c.n.Add(1)
	return slog.StringValue("resolved")
}

type panicValuer struct{}

func (panicValuer) LogValue() slog.Value { panic("no value") }

func TestHandlerOptionsAndAttrs(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	s, _ := newSink(t, tbl, Options{FlushInterval: time.Hour})
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	h := s.Handler(&slog.HandlerOptions{
		Level:     level,
		AddSource: true,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			switch {
			case a.Key == "secret":
				return slog.String("secret", "***")
			case a.Key == "drop":
				return slog.Attr{}
			case len(groups) == 1 && groups[0] == "g" && a.Key == "x":
				return slog.Int("x", 99)
			case a.Key == slog.MessageKey && a.Value.String() == "rename-me":
				return slog.String("message", "renamed")
			}
			return a
		},
	})
	l := slog.New(h)
	ctx := context.Background()
	v := &countingValuer{}
	wl := l.With("v", v, "secret", "hunter2").WithGroup("g")
	l.Info("below the level")
	wl.Warn("one", "x", 1, "drop", "gone", slog.Group("sub", "y", 2))
	wl.Warn("two", "x", 1)
	l.Error("panics", "p", panicValuer{}, slog.Group("empty"), slog.Group("", "inline", true))
	l.Log(ctx, slog.LevelWarn+2, "rename-me")
	level.Set(slog.LevelDebug)
	l.Debug("now enabled")
	if err := s.Flush(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	logs, _ := readAll(t, tbl)
	m := byMsg(logs)
	if len(logs) != 5 {
		t.Fatalf("%d entities: %v", len(logs), m)
	}
	if n := v.n.Load(); n != 1 {
		t.Errorf("WithAttrs' LogValuer resolved %d times, want once", n)
	}
	one := m["one"]
	g, _ := one.Fields["g"].(map[string]any)
	sub, _ := g["sub"].(map[string]any)
	if one.Fields["v"] != "resolved" || one.Fields["secret"] != "***" || g["x"] != int64(99) || g["drop"] != nil ||
		sub["y"] != int64(2) || one.Level != "warn" || one.Severity != 4 || !strings.Contains(one.Caller, "handler_test.go:") {
		t.Errorf("one: %+v", one)
	}
	p := m["panics"]
	if !strings.Contains(toString(p.Fields["p"]), "panic") || p.Fields["inline"] != true || p.Fields["empty"] != nil || p.Severity != 8 {
		t.Errorf("panics: %+v", p)
	}
	var renamed schema.Entity
	for _, e := range logs {
		if e.Fields["message"] == "renamed" {
			renamed = e
		}
	}
	if renamed.Msg != "" || renamed.Level != "warn+2" || renamed.Severity != 6 {
		t.Errorf("renamed message: %+v", renamed)
	}
	if e := m["now enabled"]; e.Level != "debug" || e.Severity != -4 {
		t.Errorf("debug: %+v", e)
	}
}

func toString(v any) string {
	s, _ := v.(string)
	return s
}

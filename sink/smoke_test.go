package sink

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/tablelog/tablelog/internal/azurite"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestSmoke(t *testing.T) {
	tbl := azurite.Get(t).NewTable(t)
	s, _ := newSink(t, tbl, Options{})
	l := zap.New(s.Core(zapcore.DebugLevel)).Named("smoke")
	for i := range 250 {
		l.Info("hello", zap.Int("i", i), zap.String("s", "x"), zap.Duration("d", time.Second), zap.Error(errors.New("boom")), zap.Strings("arr", []string{"a", "b"}))
	}
	sl := slog.New(s.Handler(nil))
	sl.Info("from slog", "k", 1, slog.Group("g", "a", "b"))
	if err := s.Flush(ctxT(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	logs, cat := readAll(t, tbl)
	t.Logf("stats %+v", s.Stats())
	t.Logf("%d logs, catalog %v", len(logs), cat)
	t.Logf("first %+v", logs[0])
	t.Logf("last %+v", logs[len(logs)-1])
}

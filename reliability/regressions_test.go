package reliability

// Cases that found bugs in other packages, added to the suite once fixed.

import (
	"log/slog"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tablelog/tablelog/auditlog"
	"github.com/tablelog/tablelog/sink"
)

type panicMarshaler struct{}

func (panicMarshaler) MarshalJSON() ([]byte, error) { panic("attrs boom") }

func init() {
	// zap marshalers that panic reached the caller through the sink's
	// zapcore.ObjectEncoder; now the field is stored as "<panic: …>".
	hostileCases = append(hostileCases,
		hostile{name: "ObjectMarshaler that panics",
			zap:  func(l *zap.Logger) { l.Info("hostile", zap.Object("v", panicObject{})) },
			want: markerContains("v", "object boom")},
		hostile{name: "ArrayMarshaler that panics",
			zap:  func(l *zap.Logger) { l.Info("hostile", zap.Array("v", panicArray{})) },
			want: markerContains("v", "array boom")},
		hostile{name: "inline ObjectMarshaler that panics",
			zap:  func(l *zap.Logger) { l.Info("hostile", zap.Inline(panicObject{})) },
			want: markerContains("", "object boom")},
	)
	// auditlog encoded Attrs without recovering, so a MarshalJSON that
	// panics panicked Record's caller; now the event is invalid.
	extraAuditCases = append(extraAuditCases, hostileAudit{name: "attrs with a MarshalJSON that panics",
		ev: auditlog.Event{Actor: "alice", Action: "a", Attrs: map[string]any{"v": panicMarshaler{}}}, invalid: true})
}

// Bounded memory with small records (about 160 bytes of entity each): the
// buffer's bookkeeping per record (record headers in the queue and the
// batches) was not counted in BufferBytes, and an 8 MiB buffer of small
// records retained BufferBytes + ~17 MiB during an outage. The sink now
// counts it; a 10 s outage is enough to fill the buffer.
func TestBoundedMemorySmallRecords(t *testing.T) {
	retained, budget := boundedMemory(t, sink.Block, 10*time.Second, func(zl *zap.Logger, sl *slog.Logger, producer, i int) {
		if producer == 0 {
			zl.Info("x")
		} else {
			sl.Info("x")
		}
	}, 8<<20, "")
	if retained > budget+memSlack {
		t.Errorf("the retained heap grew by %s during the outage with small records; bound BufferBytes %s + %s", mib(retained), mib(budget), mib(memSlack))
	}
}

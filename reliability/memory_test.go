package reliability

import (
	"log/slog"
	"math"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/sink"
)

// memSlack is the "small constant" the retained heap may exceed
// BufferBytes by during an outage. It is what the sink documents beyond
// BufferBytes and what the test adds, measured (heap profiles) with these
// records: up to 4 MiB of slabs kept for reuse; the transactions in
// flight, 4 of 100 records (about 130 KB of entities), each of which the
// aztables SDK copies into a multipart body grown by doubling, about 1 MiB
// each while it is retried; the bookkeeping of the ~6,500 buffered records
// (record headers in the queue and in the batches, about 1 MiB); the
// proxy, loggers and sampler (under 1 MiB); and room for the GC's timing
// under -race. It does not grow with the outage's length or the number of
// records written (about 775,000 with DropNewest).
const memSlack = 10 << 20

// kib is 1 KiB of text for memRecords.
var kib = strings.Repeat("0123456789abcdef", 64)

// memRecords writes typical records with a 1 KiB field: zap for producer
// 0, slog for producer 1 (an entity of about 1.3 KB).
func memRecords(zl *zap.Logger, sl *slog.Logger, producer, i int) {
	if producer == 0 {
		zl.Info("request handled", zap.Int("seq", i), zap.String("path", "/api/v1/items"), zap.String("body", kib))
	} else {
		sl.Info("request handled", "seq", i, "path", "/api/v1/items", "body", kib)
	}
}

// Item 4: bounded memory. For 30 s of full outage two producers (zap and
// slog) write as fast as they can into a sink with an 8 MiB buffer. The
// heap is sampled from runtime.MemStats every 10 ms (HeapAlloc and
// HeapInuse high-water, garbage included) and, every 250 ms, the retained
// heap is measured: the producers are held between two writes for that
// instant, three GCs run and the least /gc/heap/live (the GC's live heap,
// as runtime.MemStats.HeapAlloc right after a GC) of the three is taken. The retained heap
// must stay within BufferBytes + memSlack above the heap before the sink
// existed. After the outage everything the sink accepted is stored: all of
// it with Block; with DropNewest all but the counted drops.
//
// Not parallel: the heap is the whole process's, so the two runs are
// measured alone, before the parallel tests start.
func TestBoundedMemoryDuringOutage(t *testing.T) {
	for _, policy := range []sink.Overflow{sink.Block, sink.DropNewest} {
		t.Run(policy.String(), func(t *testing.T) {
			retained, budget := boundedMemory(t, policy, 30*time.Second, memRecords, 8<<20, "")
			if retained > budget+memSlack {
				t.Errorf("the retained heap grew by %s during the outage; bound BufferBytes %s + %s", mib(retained), mib(budget), mib(memSlack))
			}
		})
	}
}

// memSmallRecords writes small records (an entity of about 200 bytes), so
// that a spool holds many of them per byte of disk.
func memSmallRecords(zl *zap.Logger, sl *slog.Logger, producer, i int) {
	if producer == 0 {
		zl.Info("tick", zap.Int("seq", i))
	} else {
		sl.Info("tick", "seq", i)
	}
}

// Item 4 with a spool: records that find the buffer full wait
// on disk, each with an entry in memory (its spool ticket, sequence number
// and size). Those entries count against BufferBytes, so a 30 s outage
// with small records written at full speed keeps the retained heap within
// the same bound as without a spool, and Block stops accepting records
// once BufferBytes holds the in-memory records and the entries of those on
// disk. (Uncounted, the entries grew with the outage: tens of MiB.)
func TestBoundedMemoryDuringOutageWithSpool(t *testing.T) {
	// A smaller buffer than the other runs' 8 MiB, so that it fills on a
	// loaded machine too (1 MiB of entries: about 26,000 records on disk).
	retained, budget := boundedMemory(t, sink.Block, 30*time.Second, memSmallRecords, 2<<20, t.TempDir())
	if retained > budget+memSlack {
		t.Errorf("the retained heap grew by %s during the outage; bound BufferBytes %s + %s", mib(retained), mib(budget), mib(memSlack))
	}
}

// boundedMemory runs an outage with producers calling write into a sink
// with bufferBytes of BufferBytes (and a spool in spoolDir, if not empty)
// and returns the retained heap's high-water above the heap before the
// sink, and BufferBytes.
func boundedMemory(t *testing.T, policy sink.Overflow, outage time.Duration, write func(zl *zap.Logger, sl *slog.Logger, producer, i int), bufferBytes int, spoolDir string) (retained, budget uint64) {
	const warmup = time.Second
	name, p, tbl := faultyTable(t)

	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	s, errs := newSink(t, tbl, fastRetry(sink.Options{Overflow: policy, BufferBytes: bufferBytes, SpoolDir: spoolDir}))
	zl := zap.New(s.Core(zapcore.DebugLevel)).Named("rel")
	sl := slog.New(s.Handler(&slog.HandlerOptions{Level: slog.LevelDebug}))
	var (
		stop    atomic.Bool
		written atomic.Int64 // writes attempted
		wg      sync.WaitGroup
		// gate holds the producers between two writes while the retained
		// heap is measured.
		gate sync.RWMutex
	)
	for g := range 2 {
		wg.Go(func() {
			for i := g; !stop.Load(); i += 2 {
				gate.RLock()
				write(zl, sl, g, i)
				gate.RUnlock()
				written.Add(1)
			}
		})
	}
	time.Sleep(warmup)
	stWarm := s.Stats()
	// The proxy's outage lasts a second longer than the measurement, so
	// that the last samples (and stOutage) are all taken during it.
	p.Outage(outage + time.Second)
	outageStart := time.Now()

	var (
		maxRetained, maxLive, maxAlloc, maxInuse uint64
		maxBuffered, samples, gcs, blocked       int
		lastGC                                   time.Time
		stMid                                    sink.Stats
		haveMid                                  bool
		live                                     = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	)
	// The buffer is full once no further record of this test's size
	// fits; with a spool, once not even the 40-byte entry of a record
	// waiting on disk does.
	full := bufferBytes - 4<<10
	if spoolDir != "" {
		full = bufferBytes - 40
	}
	for time.Since(outageStart) < outage {
		if time.Since(lastGC) >= 250*time.Millisecond {
			lastGC = time.Now()
			runtime.GC() // live heap with the producers running: garbage allocated during marking is kept
			metrics.Read(live)
			maxLive = max(maxLive, live[0].Value.Uint64())
			locked := make(chan struct{})
			go func() { gate.Lock(); close(locked) }()
			select {
			case <-locked:
			case <-time.After(50 * time.Millisecond):
				// A producer is blocked in the sink (Block) holding the
				// gate: it allocates nothing, and the other waits at the
				// gate. Measure all the same.
				blocked++
			}
			// Retained: the least of three GCs in a row (a few ms), so
			// that what requests being retried allocate while a GC marks
			// is not counted; what the sink holds stays across the three.
			retained := uint64(math.MaxUint64)
			for range 3 {
				runtime.GC()
				metrics.Read(live)
				retained = min(retained, live[0].Value.Uint64())
			}
			maxRetained = max(maxRetained, retained)
			gcs++
			select {
			case <-locked:
				gate.Unlock()
			default:
				go func() { <-locked; gate.Unlock() }()
			}
		}
		runtime.ReadMemStats(&ms)
		maxAlloc = max(maxAlloc, ms.HeapAlloc)
		maxInuse = max(maxInuse, ms.HeapInuse)
		st := s.Stats()
		maxBuffered = max(maxBuffered, st.BufferedBytes)
		// The buffer is full once no further record of this test's size
		// fits: from then on Block must accept nothing more. (When that
		// happens depends on the machine's speed, not on the clock.)
		if !haveMid && st.BufferedBytes > full {
			stMid, haveMid = st, true
		}
		if err := accounting(st); err != nil {
			t.Error(err)
		}
		samples++
		time.Sleep(10 * time.Millisecond)
	}
	stOutage := s.Stats()
	over := uint64(max(int64(maxRetained)-int64(base), 0))
	t.Logf("item 4 (%s): heap before the sink %s; retained heap high-water %s = base + %s (%d measurements, %d of them with a producer blocked in the sink); live heap after one GC with the producers running %s; between GCs (%d samples, garbage included) HeapAlloc high-water %s, HeapInuse high-water %s",
		policy, mib(base), mib(maxRetained), mib(over), gcs, blocked, mib(maxLive), samples, mib(maxAlloc), mib(maxInuse))
	stop.Store(true) // the service is back; Close drains the buffer
	wg.Wait()
	closeStart := time.Now()
	if err := s.Close(ctxT(t, 5*time.Minute)); err != nil {
		t.Errorf("Close: %v", err)
	}
	closeDur := time.Since(closeStart)
	st := s.Stats()

	sel := "RowKey"
	filter := "PartitionKey ne '~catalog'"
	stored := len(readRaw(t, name, &aztables.ListEntitiesOptions{Select: &sel, Filter: &filter}))
	if err := accounting(st); err != nil {
		t.Error(err)
	}
	if uint64(stored) != st.Written || st.Written != st.Enqueued || st.FailedRecords != 0 ||
		st.Enqueued+st.Dropped+st.Rejected != uint64(written.Load()) {
		t.Errorf("stored %d, writes %d; stats %+v", stored, written.Load(), st)
	}
	switch policy {
	case sink.Block:
		if st.Dropped != 0 {
			t.Errorf("Block dropped %d", st.Dropped)
		}
		switch {
		case !haveMid:
			t.Errorf("the buffer never filled during the outage (high-water %d of %d bytes)", maxBuffered, bufferBytes)
		default:
			// Nothing is stored during the outage but what was already on
			// its way when it began (on a loaded machine the buffer is
			// full before the outage, and those transactions complete
			// after it was seen full): Block may take in only as many
			// records as left the buffer, and as fit in the room that was
			// still free when it was seen full (every record costs at
			// least its 512 bytes of overhead).
			accepted, left := int(stOutage.Enqueued-stMid.Enqueued), int(stOutage.Written-stMid.Written)
			if room := bufferBytes - stMid.BufferedBytes; (accepted-left)*512 > room {
				t.Errorf("Block accepted %d records after the buffer was full, while %d left it and %d bytes were free", accepted, left, room)
			}
		}
	case sink.DropNewest:
		if stOutage.Dropped == 0 {
			t.Errorf("DropNewest dropped nothing during a %v outage", outage)
		}
	}
	if maxBuffered > bufferBytes {
		t.Errorf("BufferedBytes reached %d, BufferBytes is %d", maxBuffered, bufferBytes)
	}
	n := stOutage.Enqueued + stOutage.Dropped - stWarm.Enqueued - stWarm.Dropped
	t.Logf("item 4 (%s): %v outage, producers at full speed: %d writes during it (%s), %d dropped; %d records buffered (%d of them spilled to the spool), BufferedBytes high-water %s of %s",
		policy, outage, n, rate(int(n), outage), stOutage.Dropped-stWarm.Dropped, stOutage.BufferedRecords, stOutage.Spilled, mib(uint64(maxBuffered)), mib(uint64(bufferBytes)))
	t.Logf("item 4 (%s): after the outage: Close took %v; stored %d = written = enqueued; retries %d; error reports %d", policy, closeDur.Round(time.Millisecond), stored, st.Retries, len(errs.all()))
	return over, uint64(bufferBytes)
}

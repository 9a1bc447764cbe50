package query

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/internal/schema"
)

// BenchmarkLogsRead reads 100,000 records of one partition through
// Reader.Logs, straight from Azurite (no proxy: the test process's CPU is
// the client's alone), with a tablelog.Client and with an *aztables.Client,
// and reports the client's process CPU (getrusage) per record (target for
// tablelog.Client: <= 5 µs) and records/s. Loading the records takes a
// minute or so, once per test binary.
//
//	go test ./query -run '^$' -bench BenchmarkLogsRead -benchtime 1x
func BenchmarkLogsRead(b *testing.B) {
	readSetup(b)
	ctx := context.Background()
	var res [2][]readResult // one per run (-count)
	for i, name := range []string{"tablelog.Client", "aztables.Client"} {
		b.Run(name, func(b *testing.B) {
			tbl := Table(readBench.tl)
			if i == 1 {
				tbl = readBench.sdk
			}
			r := New(tbl)
			var cpu, wall time.Duration
			total := 0
			for b.Loop() {
				c0, t0 := processCPU(), time.Now()
				n := 0
				for _, err := range r.Logs(ctx, Logs{Service: readBench.service, Since: readBench.since, Until: readBench.until, MinLevel: AllLevels}) {
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				wall += time.Since(t0)
				cpu += processCPU() - c0
				if n != readN {
					b.Fatalf("read %d records, want %d", n, readN)
				}
				total += n
			}
			x := readResult{cpu: float64(cpu.Nanoseconds()) / 1e3 / float64(total), rps: float64(total) / wall.Seconds()}
			res[i] = append(res[i], x)
			b.ReportMetric(x.cpu, "cpu-µs/record")
			b.ReportMetric(x.rps, "records/s")
		})
	}
	if len(res[0]) > 0 && len(res[1]) > 0 {
		tl, sdk := medianResult(res[0]), medianResult(res[1])
		fmt.Printf("LogsRead: tablelog.Client %.2f µs client CPU/record (target <= 5), %.0f records/s; aztables.Client %.2f µs/record, %.0f records/s; %.2fx less CPU (medians of %d runs)\n",
			tl.cpu, tl.rps, sdk.cpu, sdk.rps, sdk.cpu/tl.cpu, min(len(res[0]), len(res[1])))
	}
}

// readResult is one run of a BenchmarkLogsRead sub-benchmark.
type readResult struct{ cpu, rps float64 }

// medianResult returns the median CPU per record of rs, and the median
// records/s, each on its own.
func medianResult(rs []readResult) readResult {
	cpu := make([]float64, len(rs))
	rps := make([]float64, len(rs))
	for i, r := range rs {
		cpu[i], rps[i] = r.cpu, r.rps
	}
	slices.Sort(cpu)
	slices.Sort(rps)
	return readResult{cpu[len(cpu)/2], rps[len(rps)/2]}
}

const readN = 100_000

var readBench struct {
	once         sync.Once
	tl           *tablelog.Client
	sdk          *aztables.Client
	service      string
	since, until time.Time
	err          error
}

func readSetup(b *testing.B) {
	readBench.once.Do(func() {
		env := azurite.Get(b)
		name := azurite.NewTableName()
		tl, err := tablelog.NewClientFromConnectionString(env.DirectConnectionString, name, azurite.ClientOptions())
		if err != nil {
			readBench.err = err
			return
		}
		if _, err := tl.CreateTable(context.Background(), nil); err != nil {
			readBench.err = err
			return
		}
		svc, err := aztables.NewServiceClientFromConnectionString(env.DirectConnectionString, nil)
		if err != nil {
			readBench.err = err
			return
		}
		readBench.tl, readBench.sdk, readBench.service = tl, svc.NewClient(name), "bench-read"
		// One partition: the records lie in one UTC day, 0.1 ms apart.
		day := schema.Day(time.Now().UTC()).AddDate(0, 0, -1)
		first := day.Add(time.Hour)
		readBench.since, readBench.until = first, first.Add(time.Hour)
		gen := schema.NewGenerator(nil)
		var enc schema.Encoder
		var batches [][]aztables.TransactionAction
		for i := 0; i < readN; i += schema.MaxBatchOps {
			acts := make([]aztables.TransactionAction, 0, schema.MaxBatchOps)
			for j := i; j < i+schema.MaxBatchOps && j < readN; j++ {
				ts := first.Add(time.Duration(j) * 100 * time.Microsecond)
				enc.Reset(schema.PartitionKey(readBench.service, ts), schema.RowKey(gen.New(ts)))
				enc.SetTime(ts)
				enc.SetLevel("info", schema.SeverityInfo)
				enc.SetMessage("request handled")
				enc.String("user_id", fmt.Sprintf("u-%d", j%1000))
				enc.String("path", "/api/v1/orders")
				enc.Int64("status", 200)
				enc.Duration("elapsed", time.Duration(j)*time.Microsecond)
				enc.Bool("cached", j%3 == 0)
				acts = append(acts, aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: slices.Clone(enc.Finish())})
			}
			batches = append(batches, acts)
		}
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, acts := range batches {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if _, err := tl.SubmitTransaction(context.Background(), acts, nil); err != nil {
					mu.Lock()
					readBench.err = err
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		// The loading's garbage (the encoded records, ~100 MB) is not
		// the read's: collect it and give its memory back to the OS now,
		// before any measurement, rather than leave the background
		// scavenger to charge the reads for it.
		debug.FreeOSMemory()
	})
	if readBench.err != nil {
		b.Fatal(readBench.err)
	}
}

// processCPU returns the process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

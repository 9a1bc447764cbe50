package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/query"
)

// BenchmarkShards measures a busy service against Azure's scalability
// targets ÷ 10, modelled by the strict proxy (200 entities/s per
// partition, 2,000/s per account, 5 ms latency per request): a producer
// offers 1,500 zap records/s for 30 s (TABLELOG_BENCH_SHARD_SECONDS,
// TABLELOG_BENCH_SHARD_RATE override) into a Sink with an 8 MiB buffer and
// the default MaxInFlight (TABLELOG_BENCH_SHARD_INFLIGHT overrides), then
// Close gets 10 s. Three variants in the same run, each on a table and
// proxy of its own:
//
//   - sharded:   the default MaxShards (16); afterwards Logs must return
//     every stored record exactly once, newest first, and Tail(100) the
//     newest 100;
//   - unsharded: MaxShards 1, the baseline;
//   - sharded+follow: sharded again, with a Follow started before the load
//     that must see each record once. Its polls (every shard, every
//     second) cost the emulator, which filters the whole table for every
//     query, so its throughput is not comparable.
//
// For each it prints the records offered, stored during the load and by
// Close, the p99 and max time a logging call took (Block policy), the
// shards used and the 503s the proxy answered; then how many calls waited
// for room in the buffer, the first calls over 50 ms (when, and the
// buffer then), and a control: the same record through zap's JSON encoder
// to io.Discard, interleaved with the sink's calls, whose stalls are the
// machine's (scheduling, GC) and not the sink's.
func BenchmarkShards(b *testing.B) {
	seconds := envInt("TABLELOG_BENCH_SHARD_SECONDS", 30)
	rate := envInt("TABLELOG_BENCH_SHARD_RATE", 1500)
	env := azurite.Get(b)
	if env.Real {
		b.Fatalf("BenchmarkShards needs the local Azurite and strict proxy; unset %s", azurite.EnvConnectionString)
	}
	type result struct {
		offered, stored  int
		atEnd            int // stored when the producer stopped
		closeTook        time.Duration
		loadTook         time.Duration
		perSec           float64
		p99, max         time.Duration
		shards           int
		busy, notStored  int
		closeErr         error
		readOK, followOK string
		ctlP99, ctlMax   time.Duration // the control: the same call to a zap JSON core on io.Discard
		blocked          uint64        // writes that waited for room in the buffer
		slow             []string      // logging calls over 50 ms: when, how long, the buffer then
	}
	results := map[string]*result{}
	run := func(variant string, maxShards int, withFollow bool) {
		b.Run(variant, func(b *testing.B) {
			for b.Loop() {
				name := azurite.TableName(env.NewTable(b))
				p := env.NewProxy(b)
				targets := azurite.Targets{Latency: 5 * time.Millisecond}.Scaled(10)
				p.SetTargets(&targets)
				s, err := New(p.Table(b, name), Options{Service: "busy", MaxShards: maxShards, BufferBytes: 8 << 20, MaxInFlight: envInt("TABLELOG_BENCH_SHARD_INFLIGHT", 0),
					ErrorHandler: func(error) {}})
				if err != nil {
					b.Fatal(err)
				}
				direct := env.DirectTable(b, name)
				r := &result{}
				results[variant] = r

				// Follow, started before the load.
				var follow map[int64]int
				var followMu sync.Mutex
				followCtx, stopFollow := context.WithCancel(context.Background())
				followDone := make(chan error, 1)
				if withFollow {
					follow = map[int64]int{}
					go func() {
						var ferr error
						for rec, err := range query.New(direct).Follow(followCtx, query.Logs{Service: "busy"}, query.FollowOptions{Poll: time.Second}) {
							if err != nil {
								if errors.Is(err, context.Canceled) {
									break
								}
								ferr = err
								continue
							}
							followMu.Lock()
							follow[rec.Fields["n"].(int64)]++
							followMu.Unlock()
						}
						followDone <- ferr
					}()
					time.Sleep(1500 * time.Millisecond) // its baseline poll
				}

				l := zap.New(s.Core(zapcore.InfoLevel))
				// The control, interleaved with the sink's calls: the same
				// record through zap's JSON encoder to io.Discard. Its
				// stalls are the machine's (scheduling, GC), not the sink's.
				ctl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
				waits := make([]time.Duration, 0, rate*seconds)
				ctlWaits := make([]time.Duration, 0, rate*seconds)
				start := time.Now()
				tick := time.NewTicker(10 * time.Millisecond)
				n := 0
				for end := start.Add(time.Duration(seconds) * time.Second); ; {
					now := <-tick.C
					if now.After(end) {
						break
					}
					due := int(float64(rate) * now.Sub(start).Seconds())
					for ; n < due && time.Now().Before(end); n++ {
						c0 := time.Now()
						ctl.Info("request served", zap.Int("n", n), zap.String("path", "/api/v1/orders"), zap.Int("status", 200), zap.Duration("took", 1234*time.Microsecond))
						ctlWaits = append(ctlWaits, time.Since(c0))
						t0 := time.Now()
						l.Info("request served", zap.Int("n", n), zap.String("path", "/api/v1/orders"), zap.Int("status", 200), zap.Duration("took", 1234*time.Microsecond))
						w := time.Since(t0)
						waits = append(waits, w)
						if w > 50*time.Millisecond && len(r.slow) < 5 {
							st := s.Stats()
							r.slow = append(r.slow, fmt.Sprintf("at %v: %v (buffer %d KiB, %d writes blocked so far, %d shards)",
								t0.Sub(start).Round(time.Millisecond), w.Round(time.Millisecond), st.BufferedBytes>>10, st.Blocked, st.Shards))
						}
					}
				}
				tick.Stop()
				r.atEnd = int(s.Stats().Written)
				r.loadTook = time.Since(start)
				loadEnd := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				r.closeErr = s.Close(ctx)
				cancel()
				r.closeTook = time.Since(loadEnd)
				elapsed := time.Since(start)
				st := s.Stats()
				r.offered, r.stored = n, int(st.Written)
				r.notStored = n - int(st.Written)
				r.perSec = float64(st.Written) / elapsed.Seconds()
				slices.Sort(waits)
				if len(waits) > 0 {
					r.p99, r.max = waits[len(waits)*99/100], waits[len(waits)-1]
				}
				slices.Sort(ctlWaits)
				if len(ctlWaits) > 0 {
					r.ctlP99, r.ctlMax = ctlWaits[len(ctlWaits)*99/100], ctlWaits[len(ctlWaits)-1]
				}
				r.shards = st.Shards
				r.blocked = st.Blocked
				ps := p.Stats()
				r.busy = ps.Throttled[azurite.TargetPartition] + ps.Throttled[azurite.TargetAccount]
				b.ReportMetric(r.perSec, "stored/s")
				b.ReportMetric(float64(r.shards), "shards")

				if withFollow {
					// Let Follow catch up with what Close stored (its polls
					// are slow on the emulator): until it has seen as many
					// records as the table holds, or 60 s.
					want := countStored(direct)
					for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
						followMu.Lock()
						n := len(follow)
						followMu.Unlock()
						if n >= want {
							break
						}
					}
					time.Sleep(3 * time.Second) // a few more polls: nothing may come twice
					stopFollow()
					if err := <-followDone; err != nil {
						r.followOK = "error: " + err.Error()
					} else {
						r.followOK = checkOnce(follow, want)
					}
				} else {
					stopFollow()
				}
				if maxShards != 1 {
					r.readOK = readBackCheck(direct, r.stored)
				}
			}
		})
	}
	run("sharded", 0, false)
	run("unsharded", 1, false)
	run("sharded+follow", 0, true)

	for _, name := range []string{"sharded", "unsharded", "sharded+follow"} {
		if r := results[name]; r != nil {
			fmt.Printf("BenchmarkShards %-14s offered %d (%d/s for %d s), stored during the load (%v) %d (%.0f/s), stored by Close %d (%.2f of offered; Close took %v), not stored %d, logging call p99 %v max %v, shards %d, 503s %d, Close: %v\n",
				name, r.offered, rate, seconds, r.loadTook.Round(time.Millisecond), r.atEnd, float64(r.atEnd)/r.loadTook.Seconds(), r.stored, float64(r.stored)/float64(max(r.offered, 1)),
				r.closeTook.Round(time.Millisecond), r.notStored,
				r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond), r.shards, r.busy, r.closeErr)
			fmt.Printf("BenchmarkShards %-14s writes that waited for room in the buffer: %d; the first calls over 50 ms: %v; the control (zap JSON to io.Discard, interleaved) p99 %v max %v\n",
				name, r.blocked, r.slow, r.ctlP99.Round(time.Microsecond), r.ctlMax.Round(time.Microsecond))
			if r.readOK != "" {
				fmt.Printf("BenchmarkShards %-14s read back: %s\n", name, r.readOK)
			}
			if r.followOK != "" {
				fmt.Printf("BenchmarkShards %-14s follow started before the load: %s\n", name, r.followOK)
			}
		}
	}
}

// checkOnce reports whether seen holds each of n records 0..n-1 exactly
// once (records stored by Close are a prefix of those offered only when
// nothing failed; the check counts any record seen twice or never).
func checkOnce(seen map[int64]int, stored int) string {
	dups := 0
	for _, c := range seen {
		if c > 1 {
			dups++
		}
	}
	return fmt.Sprintf("%d distinct records of the %d in the table, %d seen more than once", len(seen), stored, dups)
}

// countStored counts the log records of service "busy" in the table.
func countStored(tbl *aztables.Client) int {
	n := 0
	for _, err := range query.New(tbl).Logs(context.Background(), query.Logs{Service: "busy"}) {
		if err == nil {
			n++
		}
	}
	return n
}

// readBackCheck reads the service back: Logs must return every stored record
// once, newest first; Tail(100) the newest 100.
func readBackCheck(tbl *aztables.Client, stored int) string {
	r := query.New(tbl)
	ctx := context.Background()
	var all []query.Record
	seen := map[int64]bool{}
	dups, outOfOrder := 0, 0
	start := time.Now()
	for rec, err := range r.Logs(ctx, query.Logs{Service: "busy"}) {
		if err != nil {
			return "Logs: " + err.Error()
		}
		n := rec.Fields["n"].(int64)
		if seen[n] {
			dups++
		}
		seen[n] = true
		if len(all) > 0 && rec.ID.Compare(all[len(all)-1].ID) >= 0 {
			outOfOrder++
		}
		all = append(all, rec)
	}
	took := time.Since(start)
	tail, err := r.Tail(ctx, query.Logs{Service: "busy"}, 100)
	tailOK := err == nil && len(tail) == min(100, len(all))
	for i := range tail {
		if !tailOK || tail[i].ID != all[len(tail)-1-i].ID {
			tailOK = false
			break
		}
	}
	return fmt.Sprintf("Logs %d records (of %d stored) in %v, %d duplicates, %d out of order; Tail(100) newest 100: %v",
		len(all), stored, took.Round(time.Millisecond), dups, outOfOrder, tailOK)
}

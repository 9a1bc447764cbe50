package spool

import (
	"bytes"
	"testing"
)

// benchRecord is a record with a 1 KiB entity and keys of the real sizes.
func benchRecord() Record {
	return Record{
		PartitionKey: "checkout_20261125",
		RowKey:       "7ZZZZZZZZZZZZZZZZZZZZZZZZZ",
		Entity:       bytes.Repeat([]byte("x"), 1024),
	}
}

// BenchmarkAppend measures Append (plus the Ack that lets segments go) of
// 1 KiB records under each sync policy, against the no-spool baseline: the
// copy into memory that the sink makes of every record anyway. Run it on
// the disk the spool will live on: fsync costs are the disk's.
func BenchmarkAppend(b *testing.B) {
	r := benchRecord()
	b.Run("memory", func(b *testing.B) {
		slab := make([]byte, 0, 64<<20)
		b.SetBytes(int64(len(r.Entity)))
		for b.Loop() {
			if len(slab)+len(r.Entity) > cap(slab) {
				slab = slab[:0]
			}
			slab = append(slab, r.Entity...)
		}
	})
	for _, pol := range []SyncPolicy{SyncInterval, SyncEveryRecord} {
		for _, par := range []bool{false, true} {
			name := pol.String()
			if par {
				name += "/parallel8"
			}
			b.Run(name, func(b *testing.B) {
				s, err := Open(Options{Dir: b.TempDir(), Sync: pol})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				b.SetBytes(int64(len(r.Entity)))
				b.ReportAllocs()
				if par {
					b.SetParallelism(8) // 8×GOMAXPROCS appenders: group commit at work
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							appendAck(b, s, r)
						}
					})
				} else {
					for b.Loop() {
						appendAck(b, s, r)
					}
				}
				b.StopTimer()
				if st := s.Stats(); st.Failed > 0 || st.Pending > 0 {
					b.Fatalf("stats %+v", st)
				}
			})
		}
	}
}

func appendAck(b *testing.B, s *Spool, r Record) {
	t, err := s.Append(r)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Ack(t); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpen measures the scan Open makes of what earlier runs left:
// 64 MiB of 1 KiB records.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	r := benchRecord()
	var total int64
	for total < 64<<20 {
		if _, err := s.Append(r); err != nil {
			b.Fatal(err)
		}
		total += int64(len(r.Entity))
	}
	s.Close()
	b.SetBytes(total)
	for b.Loop() {
		s, err := Open(Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		if st := s.Stats(); st.Pending == 0 {
			b.Fatal("nothing found")
		}
		s.Close()
	}
}

// BenchmarkScanDamaged measures Open's scan of a 4 MiB segment whose
// frames cannot be trusted: valid records after a damaged length field
// (the scan resynchronises on the next valid frame), and a segment of
// random bytes, the worst case (every offset is tried), against an intact
// segment.
func BenchmarkScanDamaged(b *testing.B) {
	intact := append([]byte(nil), segHeader...)
	var offs []int
	for i := 0; len(intact) < 4<<20; i++ {
		offs = append(offs, len(intact))
		r := testRecSize(i, 600)
		intact = appendFrame(intact, &r)
	}
	damaged := bytes.Clone(intact)
	damaged[offs[1]+1] ^= 0x5a
	random := bytes.Clone(intact)
	rng := uint64(1)
	for i := headerLen; i < len(random); i++ {
		rng = rng*6364136223846793005 + 1442695040888963407
		random[i] = byte(rng >> 56)
	}
	for _, c := range []struct {
		name string
		seg  []byte
	}{{"intact", intact}, {"length-damaged", damaged}, {"random", random}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.seg)))
			for b.Loop() {
				if _, err := scan(bytes.NewReader(c.seg), int64(len(c.seg)), func(int, int64, int, []byte) (bool, error) { return true, nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

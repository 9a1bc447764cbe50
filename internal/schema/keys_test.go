package schema

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func TestPartitionKey(t *testing.T) {
	ts := time.Date(2026, 11, 25, 23, 59, 59, 0, time.FixedZone("x", -3600)) // 2026-11-26 00:59:59 UTC
	pk := PartitionKey("check_out.v2", ts)
	if pk != "check_out.v2_20261126" {
		t.Fatalf("pk = %q", pk)
	}
	svc, day, shard, err := ParsePartitionKey(pk)
	if err != nil || svc != "check_out.v2" || !day.Equal(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)) || shard != 0 {
		t.Fatalf("parse: %q %v %d %v", svc, day, shard, err)
	}
	svc, _, shard, err = ParsePartitionKey(ShardPartitionKey("a_1", ts, 3))
	if err != nil || svc != "a_1" || shard != 3 {
		t.Fatalf("shard parse: %q %d %v", svc, shard, err)
	}
	for _, bad := range []string{"", "x", "svc_2026112", "svc20261126", "svc_2026xx26", "~catalog"} {
		if _, _, _, err := ParsePartitionKey(bad); err == nil {
			t.Errorf("ParsePartitionKey(%q) accepted", bad)
		}
	}
}

func TestValidateService(t *testing.T) {
	for _, ok := range []string{"a", "checkout", "check-out_v2.1", strings.Repeat("a", MaxServiceLen)} {
		if err := ValidateService(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"":                                   "empty",
		"a/b":                                `'/'`,
		"a b":                                `' '`,
		"a#":                                 `'#'`,
		"ü":                                  `'ü'`,
		"a\x00":                              `'\x00'`,
		strings.Repeat("a", MaxServiceLen+1): "limit",
		"~catalog":                           `'~'`,
	} {
		err := ValidateService(bad)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateService(%q) = %v, want it to mention %s", bad, err, want)
		}
		// A *ServiceError naming the service, whose message has no
		// package prefix (the caller adds its own).
		var se *ServiceError
		if !errors.As(err, &se) || se.Name != bad || se.Problem != err.Error() || !strings.HasPrefix(err.Error(), "service name ") {
			t.Errorf("ValidateService(%q) = %#v, want a *ServiceError for it, message starting with \"service name \"", bad, err)
		}
	}
}

func TestRowKeyOrderAndRoundTrip(t *testing.T) {
	g := NewGenerator(nil)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var prev string
	for i := 0; i < 1000; i++ {
		id := g.New(t0.Add(time.Duration(i/10) * time.Millisecond)) // 10 per ms
		rk := RowKey(id)
		if len(rk) != RowKeyLen {
			t.Fatalf("len %d", len(rk))
		}
		back, err := ParseRowKey(rk)
		if err != nil || back != id {
			t.Fatalf("round trip %v %v", back, err)
		}
		if string(AppendRowKey(nil, id)) != rk {
			t.Fatal("AppendRowKey differs")
		}
		if prev != "" && rk >= prev {
			t.Fatalf("RowKey %d not below previous: %s >= %s", i, rk, prev)
		}
		prev = rk
	}
}

func TestGeneratorConcurrentAndClockStepBack(t *testing.T) {
	g := NewGenerator(nil)
	now := time.Now()
	var mu sync.Mutex
	seen := map[ulid.ULID]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last ulid.ULID
			for i := 0; i < 500; i++ {
				id := g.New(now)
				if id.Compare(last) <= 0 {
					t.Error("not increasing within a goroutine")
				}
				last = id
				mu.Lock()
				seen[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 4000 {
		t.Fatalf("%d distinct ids, want 4000", len(seen))
	}
	a := g.New(now)
	b := g.New(now.Add(-500 * time.Millisecond))
	if b.Compare(a) <= 0 {
		t.Fatal("a small clock step back broke order")
	}
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if c := g.New(old); c.Time() != uint64(old.UnixMilli()) {
		t.Fatal("a record stamped in the past did not keep its own time")
	}
}

func TestRowKeyRangeMillisecondEdges(t *testing.T) {
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	since := base.Add(10 * time.Millisecond)
	until := base.Add(20 * time.Millisecond)
	lo, hi := RowKeyRange(since, until)
	in := func(ts time.Time, entropy byte) bool {
		var id ulid.ULID
		_ = id.SetTime(ulid.Timestamp(ts))
		for i := 6; i < 16; i++ {
			id[i] = entropy
		}
		rk := RowKey(id)
		return lo <= rk && rk < hi
	}
	for _, c := range []struct {
		off  time.Duration
		want bool
	}{
		{9 * time.Millisecond, false},
		{10 * time.Millisecond, true}, // since is inclusive
		{15 * time.Millisecond, true},
		{19 * time.Millisecond, true},
		{20 * time.Millisecond, false}, // until is exclusive
		{21 * time.Millisecond, false},
	} {
		for _, ent := range []byte{0x00, 0x7f, 0xff} {
			if got := in(base.Add(c.off), ent); got != c.want {
				t.Errorf("t=+%v entropy=%x: in=%v want %v", c.off, ent, got, c.want)
			}
		}
	}
	// Sub-millisecond parts are truncated: since 10.9ms still includes 10ms.
	lo2, hi2 := RowKeyRange(since.Add(900*time.Microsecond), until.Add(900*time.Microsecond))
	if lo2 != lo || hi2 != hi {
		t.Error("sub-millisecond parts changed the bounds")
	}
	// Open ends.
	lo, hi = RowKeyRange(time.Time{}, time.Time{})
	if !in(base, 0) || !in(time.UnixMilli(1), 0xff) {
		t.Errorf("open range excludes records: %q %q", lo, hi)
	}
}

func FuzzRowKey(f *testing.F) {
	f.Add(int64(1), int64(2), []byte("0123456789"))
	f.Add(int64(0), int64(1<<47), []byte{})
	f.Fuzz(func(t *testing.T, a, b int64, entropy []byte) {
		if a < 0 {
			a = -a
		}
		if b < 0 {
			b = -b
		}
		a %= int64(ulid.MaxTime())
		b %= int64(ulid.MaxTime())
		mk := func(ms int64) ulid.ULID {
			var id ulid.ULID
			_ = id.SetTime(uint64(ms))
			copy(id[6:], entropy)
			return id
		}
		ia, ib := mk(a), mk(b)
		ra, rb := RowKey(ia), RowKey(ib)
		if back, err := ParseRowKey(ra); err != nil || back != ia {
			t.Fatalf("round trip: %v %v", back, err)
		}
		if a < b && !(rb < ra) {
			t.Fatalf("t1 < t2 but RowKey(t2) %s >= RowKey(t1) %s", rb, ra)
		}
		lo, hi := RowKeyRange(time.UnixMilli(a), time.UnixMilli(a+1))
		if !(lo <= ra && ra < hi) {
			t.Fatalf("record at %d outside its own range [%s,%s): %s", a, lo, hi, ra)
		}
	})
}

func TestKeysClampOutOfRangeTimes(t *testing.T) {
	g := NewGenerator(nil)
	for _, ts := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		pk := PartitionKey("svc", ts)
		_, day, _, err := ParsePartitionKey(pk)
		if err != nil {
			t.Fatalf("%v: partition key %q does not parse: %v", ts, pk, err)
		}
		rkTime, _ := RowKeyTime(RowKey(g.New(ts)))
		if !Day(rkTime).Equal(day) {
			t.Errorf("%v: RowKey time %v is not in the partition's day %v", ts, rkTime, day)
		}
	}
}

func TestRowKeyRangeBeyondTheLastKeyTime(t *testing.T) {
	rk := RowKey(NewGenerator(nil).New(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)))
	for _, until := range []time.Time{
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		lo, hi := RowKeyRange(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), until)
		if !(lo <= rk && rk < hi) {
			t.Errorf("until %v: a record stamped after 9999 is outside [%s, %s)", until, lo, hi)
		}
	}
}

// TestParseDayMatchesTimeParse: the hand-written day parser accepts and
// rejects exactly what time.Parse(DayLayout) does.
func TestParseDayMatchesTimeParse(t *testing.T) {
	for _, s := range []string{"20261125", "00000101", "99991231", "20240229", "20230229", "21000229", "20000229",
		"20261301", "20260001", "20261100", "20261131", "2026112", "202611255", "2026-1-1", "+0261125", "2026112x", "        "} {
		want, werr := time.Parse(DayLayout, s)
		got, ok := parseDay(s)
		if ok != (werr == nil) || ok && !got.Equal(want) {
			t.Errorf("parseDay(%q) = %v, %v; time.Parse: %v, %v", s, got, ok, want, werr)
		}
	}
}

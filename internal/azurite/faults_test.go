package azurite

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// noRetry makes every injected fault visible to the caller.
var noRetry = &aztables.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}

// faultSetup gives a test its own proxy, a table, a no-retry client through
// the proxy and a direct client.
func faultSetup(t *testing.T) (*Proxy, *aztables.Client, *aztables.Client) {
	t.Helper()
	needEmulator(t)
	env := Get(t)
	name := TableName(env.NewTable(t))
	p := env.NewProxy(t)
	return p, p.Table(t, name, noRetry), env.DirectTable(t, name)
}

func TestFaultStatus(t *testing.T) {
	t.Parallel()
	p, tbl, direct := faultSetup(t)
	c := ctx(t)
	p.SetFaults(Faults{StatusRate: 1})
	_, err := tbl.AddEntity(c, ent(t, "p", "1", nil), nil)
	re := responseError(t, err)
	if re.StatusCode != http.StatusServiceUnavailable || re.ErrorCode != "ServerBusy" {
		t.Fatalf("got %d %s, want 503 ServerBusy", re.StatusCode, re.ErrorCode)
	}
	wantAbsent(t, direct, "p", "1")

	p.SetFaults(Faults{StatusRate: 1, Status: http.StatusInternalServerError})
	_, err = tbl.AddEntity(c, ent(t, "p", "1", nil), nil)
	if re := responseError(t, err); re.StatusCode != 500 || re.ErrorCode != "InternalError" {
		t.Fatalf("got %d %s, want 500 InternalError", re.StatusCode, re.ErrorCode)
	}
	if got := p.Stats().Faults[FaultStatus]; got != 2 {
		t.Errorf("Stats().Faults[status] = %d, want 2", got)
	}
	p.Reset()
	if _, err := tbl.AddEntity(c, ent(t, "p", "1", nil), nil); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
}

func TestFaultThrottle(t *testing.T) {
	t.Parallel()
	p, tbl, direct := faultSetup(t)
	c := ctx(t)
	p.SetFaults(Faults{ThrottleRate: 1, RetryAfter: 1500 * time.Millisecond})
	_, err := tbl.AddEntity(c, ent(t, "p", "1", nil), nil)
	re := responseError(t, err)
	if re.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("got %d, want 429", re.StatusCode)
	}
	if got := re.RawResponse.Header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want \"2\" (1.5 s rounded up)", got)
	}
	wantAbsent(t, direct, "p", "1")
	if got := p.Stats().Faults[FaultThrottle]; got != 1 {
		t.Errorf("Stats().Faults[throttle] = %d, want 1", got)
	}
}

// TestFaultThrottleHonoured shows the SDK's retry policy waits Retry-After.
func TestFaultThrottleHonoured(t *testing.T) {
	t.Parallel()
	p, _, direct := faultSetup(t)
	tbl := p.Table(t, TableName(direct)) // harness policy: 3 fast retries
	var n atomic.Int32
	first := func(*http.Request) bool { return n.Add(1) == 1 }
	p.SetFaults(Faults{ThrottleRate: 1, RetryAfter: time.Second, Match: first})
	start := time.Now()
	if _, err := tbl.AddEntity(ctx(t), ent(t, "p", "1", nil), nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("throttled insert succeeded after %v: Retry-After was not honoured", el)
	}
	if got := p.Stats().Faults[FaultThrottle]; got != 1 {
		t.Errorf("Stats().Faults[throttle] = %d, want 1", got)
	}
}

func TestFaultReset(t *testing.T) {
	t.Parallel()
	p, tbl, direct := faultSetup(t)
	p.SetFaults(Faults{ResetRate: 1})
	_, err := tbl.AddEntity(ctx(t), ent(t, "p", "1", nil), nil)
	wantNetworkError(t, err)
	wantAbsent(t, direct, "p", "1")
	if s := p.Stats(); s.Faults[FaultReset] != 1 || s.Forwarded != 0 {
		t.Errorf("Stats() = %+v, want 1 reset and nothing forwarded", s)
	}
}

func TestFaultDropAfterCommit(t *testing.T) {
	t.Parallel()
	p, tbl, direct := faultSetup(t)
	c := ctx(t)
	p.SetFaults(Faults{DropAfterCommitRate: 1})
	_, err := tbl.AddEntity(c, ent(t, "p", "1", nil), nil)
	wantNetworkError(t, err)
	if _, err := direct.GetEntity(c, "p", "1", nil); err != nil {
		t.Fatalf("the write was not committed: %v", err)
	}
	// Batches too.
	actions := []aztables.TransactionAction{
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "b", "1", nil)},
		{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "b", "2", nil)},
	}
	_, err = tbl.SubmitTransaction(c, actions, nil)
	wantNetworkError(t, err)
	if n := countEntities(t, direct, "b"); n != 2 {
		t.Fatalf("batch: %d of 2 entities committed", n)
	}
	// A retry of the same insert now conflicts: what a writer must handle.
	p.Reset()
	_, err = tbl.AddEntity(c, ent(t, "p", "1", nil), nil)
	if re := responseError(t, err); re.StatusCode != http.StatusConflict {
		t.Fatalf("retry: got %v, want 409", err)
	}
}

func TestFaultLatency(t *testing.T) {
	t.Parallel()
	p, tbl, _ := faultSetup(t)
	p.SetFaults(Faults{LatencyRate: 1, Latency: 300 * time.Millisecond})
	start := time.Now()
	if _, err := tbl.AddEntity(ctx(t), ent(t, "p", "1", nil), nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("request took %v, want >= 300ms", el)
	}
	if got := p.Stats().Faults[FaultLatency]; got != 1 {
		t.Errorf("Stats().Faults[latency] = %d, want 1", got)
	}
}

func TestFaultOutage(t *testing.T) {
	t.Parallel()
	p, tbl, direct := faultSetup(t)
	c := ctx(t)
	p.Outage(400 * time.Millisecond)
	_, err := tbl.AddEntity(c, ent(t, "p", "1", nil), nil)
	wantNetworkError(t, err)
	wantAbsent(t, direct, "p", "1")
	time.Sleep(450 * time.Millisecond)
	if _, err := tbl.AddEntity(c, ent(t, "p", "1", nil), nil); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	if got := p.Stats().Faults[FaultOutage]; got != 1 {
		t.Errorf("Stats().Faults[outage] = %d, want 1", got)
	}
}

// TestFaultSeedDeterministic shows the same seed gives the same faults for
// the same sequence of requests.
func TestFaultSeedDeterministic(t *testing.T) {
	t.Parallel()
	needEmulator(t)
	env := Get(t)
	name := TableName(env.NewTable(t))
	run := func(seed int64) string {
		p := env.NewProxy(t)
		tbl := p.Table(t, name, noRetry)
		p.SetFaults(Faults{Seed: seed, StatusRate: 0.3, ThrottleRate: 0.3})
		var out []byte
		for range 30 {
			_, err := tbl.GetEntity(ctx(t), "none", "none", nil)
			var re *azcore.ResponseError
			errors.As(err, &re)
			switch re.StatusCode {
			case 503:
				out = append(out, 'S')
			case 429:
				out = append(out, 'T')
			default:
				out = append(out, '.')
			}
		}
		return string(out)
	}
	a, b, other := run(42), run(42), run(43)
	if a != b {
		t.Fatalf("same seed, different faults:\n%s\n%s", a, b)
	}
	if a == other {
		t.Errorf("seeds 42 and 43 gave the same faults: %s", a)
	}
	t.Logf("seed 42: %s", a)
}

func TestFaultMatch(t *testing.T) {
	t.Parallel()
	p, tbl, _ := faultSetup(t)
	c := ctx(t)
	p.SetFaults(Faults{StatusRate: 1, Match: func(r *http.Request) bool { return r.Method == http.MethodGet }})
	if _, err := tbl.AddEntity(c, ent(t, "p", "1", nil), nil); err != nil {
		t.Fatalf("POST was faulted: %v", err)
	}
	_, err := tbl.GetEntity(c, "p", "1", nil)
	if re := responseError(t, err); re.StatusCode != 503 {
		t.Fatalf("GET: got %v, want 503", err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	p, tbl, _ := faultSetup(t)
	c := ctx(t)
	tbl.AddEntity(c, ent(t, "p", "1", nil), nil)
	tbl.AddEntity(c, ent(t, "p", "2", map[string]any{"bad-name": 1}), nil)
	tbl.SubmitTransaction(c, []aztables.TransactionAction{{ActionType: aztables.TransactionTypeAdd, Entity: ent(t, "p", "3", nil)}}, nil)
	s := p.Stats()
	if s.Requests != 3 || s.Batches != 1 || s.Forwarded != 2 || s.Rejected[CodePropertyNameInvalid] != 1 {
		t.Fatalf("Stats() = %+v", s)
	}
	p.Reset()
	if s := p.Stats(); s.Requests != 0 || len(s.Rejected) != 0 {
		t.Fatalf("after Reset: %+v", s)
	}
}

// wantNetworkError checks err is a transport failure, not an HTTP answer.
func wantNetworkError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("request succeeded, want a network error")
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		t.Fatalf("got an HTTP response (%d), want a network error: %v", re.StatusCode, err)
	}
}

package azurite

import (
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Faults configures the failures a Proxy injects. Rates are probabilities in
// [0, 1] drawn per request from a generator seeded with Seed, so a given
// sequence of requests meets the same faults on every run. For each request
// the proxy draws, in this order: reset, status, throttle, latency,
// drop-after-commit; the first of reset, status and throttle that hits wins
// (nothing is forwarded), latency delays a forwarded request, and
// drop-after-commit applies to what was forwarded.
//
// The zero value injects nothing.
type Faults struct {
	// Seed seeds the generator (0 is a valid seed).
	Seed int64

	// StatusRate is the fraction of requests answered with Status (default
	// 503) and Azure's error body for it, without reaching Azurite.
	StatusRate float64
	Status     int

	// ThrottleRate is the fraction of requests answered 429 with a
	// Retry-After header of RetryAfter rounded up to whole seconds
	// (default 1 s), without reaching Azurite.
	ThrottleRate float64
	RetryAfter   time.Duration

	// ResetRate is the fraction of requests whose connection is reset (TCP
	// RST) before anything is forwarded.
	ResetRate float64

	// DropAfterCommitRate is the fraction of requests forwarded to Azurite
	// whose response is then thrown away and the client's connection reset:
	// the write happened, the client sees a network error.
	DropAfterCommitRate float64

	// LatencyRate is the fraction of requests delayed by Latency before
	// they are forwarded.
	LatencyRate float64
	Latency     time.Duration

	// Match, if not nil, limits faults to the requests it returns true for
	// (for example only POSTs); other requests pass untouched. It is
	// called concurrently.
	Match func(*http.Request) bool
}

// Fault kinds, the keys of Stats.Faults.
const (
	FaultStatus          = "status"
	FaultThrottle        = "throttle"
	FaultReset           = "reset"
	FaultDropAfterCommit = "drop-after-commit"
	FaultLatency         = "latency"
	FaultOutage          = "outage"
)

// Stats counts what a Proxy did since it started or since Reset.
type Stats struct {
	// Requests is the number of requests received (including those failed
	// by faults or rejected).
	Requests int
	// Batches is the number of $batch requests among them.
	Batches int
	// Forwarded is the number of requests Azurite answered.
	Forwarded int
	// Rejected counts strict-rule rejections by Azure error code
	// (e.g. "TooManyProperties").
	Rejected map[string]int
	// Faults counts injected faults by kind (Fault* constants).
	Faults map[string]int
	// Throttled counts requests answered 503 ServerBusy by the
	// scalability targets (SetTargets), by scope (TargetPartition,
	// TargetAccount).
	Throttled map[string]int
}

// SetFaults replaces the proxy's fault configuration and reseeds its
// generator. It fails the test (or panics, for Env.Proxy) against a real
// account.
func (p *Proxy) SetFaults(f Faults) {
	if p.real {
		if p.t != nil {
			p.t.Helper()
		}
		p.failMisuse("SetFaults")
		return
	}
	if f.StatusRate > 0 && f.Status == 0 {
		f.Status = http.StatusServiceUnavailable
	}
	if f.ThrottleRate > 0 && f.RetryAfter <= 0 {
		f.RetryAfter = time.Second
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = f
	p.rng = newRNG(f.Seed)
}

// Outage makes every request fail with a reset connection for d, starting
// now; then the proxy recovers by itself. It fails the test (or panics, for
// Env.Proxy) against a real account.
func (p *Proxy) Outage(d time.Duration) {
	if p.real {
		if p.t != nil {
			p.t.Helper()
		}
		p.failMisuse("Outage")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.outageUntil = time.Now().Add(d)
}

// Reset clears faults, any outage and the scalability targets, and zeroes
// the statistics. Against a real account it does nothing.
func (p *Proxy) Reset() {
	if p.real {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetLocked()
}

func (p *Proxy) resetLocked() {
	p.faults = Faults{}
	p.rng = newRNG(0)
	p.outageUntil = time.Time{}
	p.limiter = nil
	p.stats = Stats{Rejected: map[string]int{}, Faults: map[string]int{}, Throttled: map[string]int{}}
}

// Stats returns a snapshot of the proxy's counters.
func (p *Proxy) Stats() Stats {
	if p.real {
		return Stats{Rejected: map[string]int{}, Faults: map[string]int{}, Throttled: map[string]int{}}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Rejected = make(map[string]int, len(p.stats.Rejected))
	for k, v := range p.stats.Rejected {
		s.Rejected[k] = v
	}
	s.Faults = make(map[string]int, len(p.stats.Faults))
	for k, v := range p.stats.Faults {
		s.Faults[k] = v
	}
	s.Throttled = make(map[string]int, len(p.stats.Throttled))
	for k, v := range p.stats.Throttled {
		s.Throttled[k] = v
	}
	return s
}

func (p *Proxy) count(f func(*Stats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

// decision is what happens to one request.
type decision struct {
	outage          bool
	reset           bool
	status          int
	throttle        time.Duration
	latency         time.Duration
	dropAfterCommit bool
}

// decide draws the request's faults. It always draws five numbers per
// matching request, so one request's outcome never shifts the next one's.
func (p *Proxy) decide(r *http.Request) decision {
	match := true
	p.mu.Lock()
	f := p.faults
	p.mu.Unlock()
	if f.Match != nil {
		match = f.Match(r)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Requests++
	if isBatch(r) {
		p.stats.Batches++
	}
	var d decision
	if time.Now().Before(p.outageUntil) {
		d.outage = true
		p.stats.Faults[FaultOutage]++
		return d
	}
	if !match {
		return d
	}
	u := [5]float64{}
	for i := range u {
		u[i] = p.rng.Float64()
	}
	switch {
	case u[0] < f.ResetRate:
		d.reset = true
		p.stats.Faults[FaultReset]++
		return d
	case u[1] < f.StatusRate:
		d.status = f.Status
		p.stats.Faults[FaultStatus]++
		return d
	case u[2] < f.ThrottleRate:
		d.throttle = f.RetryAfter
		p.stats.Faults[FaultThrottle]++
		return d
	}
	if u[3] < f.LatencyRate && f.Latency > 0 {
		d.latency = f.Latency
		p.stats.Faults[FaultLatency]++
	}
	if u[4] < f.DropAfterCommitRate {
		d.dropAfterCommit = true
		p.stats.Faults[FaultDropAfterCommit]++
	}
	return d
}

// writeFaultStatus answers status with the error Azure gives for it.
func writeFaultStatus(w http.ResponseWriter, status int) {
	code, msg := "InternalError", "The server encountered an internal error. Please retry the request."
	switch status {
	case http.StatusServiceUnavailable:
		code, msg = "ServerBusy", "The server is currently unable to receive requests. Please retry your request."
	case http.StatusRequestTimeout:
		code, msg = "OperationTimedOut", "The operation could not be completed within the permitted time."
	case http.StatusInternalServerError:
	case http.StatusGatewayTimeout:
		code, msg = "OperationTimedOut", "The operation could not be completed within the permitted time."
	default:
		if status < 500 {
			code, msg = "InvalidInput", "One of the request inputs is not valid."
		}
	}
	writeAzureError(w, &Rejection{Status: status, Code: code, Message: msg})
}

// writeThrottle answers 429 with Retry-After in whole seconds (rounded up).
func writeThrottle(w http.ResponseWriter, after time.Duration) {
	secs := int(math.Ceil(after.Seconds()))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeAzureError(w, &Rejection{Status: http.StatusTooManyRequests, Code: "TooManyRequests",
		Message: "The request rate is too large. Please retry after the time given in the Retry-After header."})
}

// rng is a deterministic generator (PCG) for fault decisions.
type rng struct{ r *rand.Rand }

func newRNG(seed int64) *rng {
	return &rng{rand.New(rand.NewPCG(uint64(seed), 0x7461626c656c6f67))}
}

func (g *rng) Float64() float64 { return g.r.Float64() }

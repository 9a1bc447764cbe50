package azurite

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// Azure's scalability targets for the Table service (1 KiB entities).
const (
	// DefaultPartitionRate is the entities per second one partition takes.
	DefaultPartitionRate = 2000
	// DefaultAccountRate is the entities per second one account takes.
	DefaultAccountRate = 20000
)

// Target scopes, the keys of Stats.Throttled.
const (
	TargetPartition = "partition"
	TargetAccount   = "account"
)

// CodeServerBusy is the error code Azure answers 503 with when a
// scalability target is exceeded.
const CodeServerBusy = "ServerBusy"

const (
	msgPartitionBusy = "The server is currently unable to receive requests. Please retry your request."
	msgAccountBusy   = "Operations per second is over the account limit."
)

// Targets models Azure's scalability targets in a Proxy: a token bucket of
// entities per partition and one for the whole account. A request that
// would overdraw either bucket is answered 503 ServerBusy with the Table
// service's OData JSON error body, forwards nothing and consumes nothing;
// otherwise its entities are taken from both buckets and it is forwarded.
//
// What a request costs: a $batch counts its operations (all in one
// partition, which the strict rules ensure); an insert, update, merge,
// upsert, delete or point read counts 1 against its partition; a query or a
// table operation counts 1 against the account only. Requests the strict
// rules reject cost nothing.
//
// The zero value means Azure's targets: 2,000 entities/s per partition and
// 20,000/s per account, no latency, the wall clock. Tests scale the rates
// down (see Scaled) so that a laptop can exceed them.
type Targets struct {
	// PartitionRate is the entities per second one partition takes; 0
	// means DefaultPartitionRate, negative means no partition limit.
	PartitionRate float64
	// AccountRate is the entities per second the account takes; 0 means
	// DefaultAccountRate, negative means no account limit.
	AccountRate float64
	// Burst is how many seconds of its rate a bucket holds when full; 0
	// means 1 s. A bucket always holds at least MaxBatchOperations
	// entities, so that a full batch can pass.
	Burst time.Duration
	// Latency, if positive, delays every request the proxy forwards or
	// throttles (like a nearby region's round trip), so that concurrency
	// matters as it does in production.
	Latency time.Duration
	// Now is the buckets' clock; nil means time.Now. Tests pass a fake
	// clock to refill the buckets without sleeping. It is called with the
	// proxy's target lock held and must not call back into the proxy.
	Now func() time.Time
}

// Scaled returns t with both rates divided by div (for example 10: 200
// entities/s per partition and 2,000/s per account). Unlimited rates stay
// unlimited. div must be positive.
func (t Targets) Scaled(div float64) Targets {
	p, a := t.rates()
	if p > 0 {
		t.PartitionRate = p / div
	}
	if a > 0 {
		t.AccountRate = a / div
	}
	return t
}

func (t Targets) rates() (partition, account float64) {
	partition, account = t.PartitionRate, t.AccountRate
	if partition == 0 {
		partition = DefaultPartitionRate
	}
	if account == 0 {
		account = DefaultAccountRate
	}
	return partition, account
}

// SetTargets makes the proxy enforce t from now on, with full buckets; nil
// turns the targets off (a new proxy has none). It fails the test (or
// panics, for Env.Proxy) against a real account, which has its own.
func (p *Proxy) SetTargets(t *Targets) {
	if p.real {
		if p.t != nil {
			p.t.Helper()
		}
		p.failMisuse("SetTargets")
		return
	}
	var l *limiter
	if t != nil {
		l = newLimiter(*t)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limiter = l
}

// limiter holds a Targets' buckets.
type limiter struct {
	now       func() time.Time
	latency   time.Duration
	partRate  float64 // <= 0: unlimited
	partCap   float64
	account   *bucket // nil: unlimited
	mu        sync.Mutex
	partition map[string]*bucket
}

func newLimiter(t Targets) *limiter {
	l := &limiter{now: t.Now, latency: t.Latency, partition: map[string]*bucket{}}
	if l.now == nil {
		l.now = time.Now
	}
	burst := t.Burst
	if burst <= 0 {
		burst = time.Second
	}
	capOf := func(rate float64) float64 {
		return max(rate*burst.Seconds(), MaxBatchOperations)
	}
	p, a := t.rates()
	now := l.now()
	if p > 0 {
		l.partRate, l.partCap = p, capOf(p)
	}
	if a > 0 {
		l.account = &bucket{rate: a, capacity: capOf(a), tokens: capOf(a), last: now}
	}
	return l
}

// maxIdleBuckets bounds the partition map: past it, buckets that have
// refilled completely (the same as absent ones) are dropped.
const maxIdleBuckets = 4096

// take charges n entities to partition pk ("" for account-only requests).
// It returns "" if they pass, or the scope (TargetPartition or
// TargetAccount) whose bucket was short; then nothing was taken.
func (l *limiter) take(pk string, n float64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var pb *bucket
	if pk != "" && l.partRate > 0 {
		pb = l.partition[pk]
		if pb == nil {
			if len(l.partition) >= maxIdleBuckets {
				for k, b := range l.partition {
					if b.refill(now); b.tokens >= b.capacity {
						delete(l.partition, k)
					}
				}
			}
			pb = &bucket{rate: l.partRate, capacity: l.partCap, tokens: l.partCap, last: now}
			l.partition[pk] = pb
		}
		if pb.refill(now); pb.tokens < n {
			return TargetPartition
		}
	}
	if l.account != nil {
		if l.account.refill(now); l.account.tokens < n {
			return TargetAccount
		}
		l.account.tokens -= n
	}
	if pb != nil {
		pb.tokens -= n
	}
	return ""
}

// bucket is a token bucket of entities.
type bucket struct {
	rate, capacity, tokens float64
	last                   time.Time
}

func (b *bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.capacity, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// cost returns the partition a request is charged to ("" for the account
// only) and its number of entities. ops are the request's parsed batch
// operations, if it is a batch.
func cost(r *http.Request, body []byte, ops []BatchOperation) (string, int) {
	if isBatch(r) {
		if len(ops) == 0 {
			return "", 1
		}
		return ops[0].PartitionKey, len(ops)
	}
	res := lastSegment(r.URL)
	table, keys, hasKeys := strings.Cut(res, "(")
	if table == "" || strings.EqualFold(table, "Tables") {
		return "", 1
	}
	if hasKeys && keys != ")" {
		if pk, _, ok := parseKeys("(" + keys); ok {
			return pk, 1
		}
		return "", 1
	}
	if r.Method == http.MethodPost { // insert: the keys are in the body
		if e, err := parseEntity(body); err == nil && e.pk != nil {
			return *e.pk, 1
		}
	}
	return "", 1 // a query
}

// writeServerBusy answers 503 ServerBusy for the scope whose target was
// exceeded.
func writeServerBusy(w http.ResponseWriter, scope string) {
	msg := msgPartitionBusy
	if scope == TargetAccount {
		msg = msgAccountBusy
	}
	writeAzureError(w, &Rejection{Status: http.StatusServiceUnavailable, Code: CodeServerBusy, Message: msg, Index: -1})
}

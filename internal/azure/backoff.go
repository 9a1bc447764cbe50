package azure

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff returns the delay before retry number attempt+1 (attempt is
// 0-based): a random time between half and all of min(base·2^attempt, max)
// ("equal jitter", so concurrent clients spread out but none retries at
// once), or retryAfter when that is longer. A zero or negative base or max
// gives retryAfter alone.
func Backoff(attempt int, base, max, retryAfter time.Duration) time.Duration {
	if base <= 0 || max <= 0 {
		return retryAfter
	}
	d := max
	if attempt < 40 {
		if x := base << attempt; x > 0 && x < d {
			d = x
		}
	}
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = retryAfter
	}
	return d
}

// Sleep waits d or until ctx is done, returning ctx.Err() then.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

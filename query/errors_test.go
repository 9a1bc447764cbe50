package query

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azurite"
)

// firstErr returns the first error a Logs iteration yields.
func firstErr(r *Reader, ctx context.Context, q Logs) error {
	for _, err := range r.Logs(ctx, q) {
		if err != nil {
			return err
		}
	}
	return nil
}

func noSecrets(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	for _, s := range []string{azurite.AccountKey, "sig=", "\n"} {
		if strings.Contains(msg, s) {
			t.Errorf("error message %q contains %q", msg, s)
		}
	}
}

// Clear errors mapped from *azcore.ResponseError.
func TestErrorTableNotFound(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	r := New(env.Table(t, azurite.NewTableName()))
	q := Logs{Service: "svc", Until: day0}
	err := firstErr(r, t.Context(), q)
	if !errors.Is(err, ErrTableNotFound) {
		t.Fatalf("got %v, want ErrTableNotFound", err)
	}
	var qe *Error
	var re *azcore.ResponseError
	if !errors.As(err, &qe) || qe.StatusCode != http.StatusNotFound || !errors.As(err, &re) {
		t.Fatalf("error %#v does not carry the status and the ResponseError", err)
	}
	noSecrets(t, err)
	t.Log(err)
	if _, err := r.Tail(t.Context(), q, 10); !errors.Is(err, ErrTableNotFound) {
		t.Errorf("Tail: %v", err)
	}
	if _, err := r.Services(t.Context()); !errors.Is(err, ErrTableNotFound) {
		t.Errorf("Services: %v", err)
	}
	for _, err := range r.Follow(t.Context(), Logs{Service: "svc"}, FollowOptions{Poll: time.Millisecond}) {
		if !errors.Is(err, ErrTableNotFound) {
			t.Errorf("Follow: %v", err)
		}
	}
}

func TestErrorAuth(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	if env.Real {
		t.Skip("needs the emulator's account key")
	}
	name := env.NewTable(t)
	tn := azurite.TableName(name)
	// A write-only SAS (add permission only): reads are refused.
	addOnly := New(twin(t, env.AddOnlyTable(t, tn)))
	err := firstErr(addOnly, t.Context(), Logs{Service: "svc", Until: day0})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("add-only SAS: got %v, want ErrAuth", err)
	}
	noSecrets(t, err)
	t.Log(err)
	// A wrong account key.
	wrong := strings.Replace(env.ConnectionString, azurite.AccountKey, "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleQ==", 1)
	svc, err := aztables.NewServiceClientFromConnectionString(wrong, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = firstErr(New(svc.NewClient(tn)), t.Context(), Logs{Service: "svc", Until: day0})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong key: got %v, want ErrAuth", err)
	}
	noSecrets(t, err)
	t.Log(err)
}

func TestErrorThrottledAndUnavailable(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	tn := azurite.TableName(env.NewTable(t))
	p := env.NewProxy(t)
	noRetry := &aztables.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}}
	r := New(p.Table(t, tn, noRetry))
	q := Logs{Service: "svc", Until: day0}

	p.SetFaults(azurite.Faults{ThrottleRate: 1, RetryAfter: time.Second})
	err := firstErr(r, t.Context(), q)
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("throttled: got %v", err)
	}
	noSecrets(t, err)
	t.Log(err)

	p.SetFaults(azurite.Faults{StatusRate: 1, Status: http.StatusServiceUnavailable})
	if err := firstErr(r, t.Context(), q); !errors.Is(err, ErrThrottled) && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("503: got %v", err)
	} else {
		t.Log(err)
	}
	p.SetFaults(azurite.Faults{StatusRate: 1, Status: http.StatusInternalServerError})
	if err := firstErr(r, t.Context(), q); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("500: got %v", err)
	}
	p.SetFaults(azurite.Faults{ResetRate: 1})
	err = firstErr(r, t.Context(), q)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("reset: got %v", err)
	}
	noSecrets(t, err)
	t.Log(err)
	p.Reset()
	if err := firstErr(r, t.Context(), q); err != nil {
		t.Fatalf("after faults: %v", err)
	}
}

// Cancelling the context ends an iteration promptly: during a slow request
// and between records.
func TestCancelEndsIterationPromptly(t *testing.T) {
	t.Parallel()
	env := azurite.Get(t)
	tbl := env.NewTable(t)
	var es []*entry
	for i := range 50 {
		es = append(es, &entry{Time: day0.Add(time.Duration(i) * time.Second), Msg: "c"})
	}
	put(t, tbl, "cancel", es, 1)
	p := env.NewProxy(t)
	r := New(twin(t, p.Table(t, azurite.TableName(tbl))))
	q := Logs{Service: "cancel", Since: day0, Until: day0.Add(time.Hour)}

	// Between records.
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	var last error
	for _, err := range r.Logs(ctx, q) {
		if err != nil {
			last = err
			break
		}
		if n++; n == 3 {
			cancel()
		}
	}
	if n != 3 || !errors.Is(last, context.Canceled) {
		t.Fatalf("cancel between records: %d records, then %v", n, last)
	}

	// During a request that takes 20 s.
	p.SetFaults(azurite.Faults{LatencyRate: 1, Latency: 20 * time.Second})
	ctx, cancel = context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := firstErr(r, ctx, q)
	if d := time.Since(start); d > 2*time.Second || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel during a request: %v after %v", err, d)
	}
	// Follow, waiting between polls.
	ctx, cancel = context.WithCancel(t.Context())
	p.Reset()
	time.AfterFunc(300*time.Millisecond, cancel)
	start = time.Now()
	for _, err := range r.Follow(ctx, Logs{Service: "cancel"}, FollowOptions{Poll: time.Hour}) {
		if err != nil {
			last = err
		}
	}
	if d := time.Since(start); d > 2*time.Second || !errors.Is(last, context.Canceled) {
		t.Fatalf("cancel Follow: %v after %v", last, d)
	}
}

func TestRedact(t *testing.T) {
	err := &Error{Op: "x", Kind: ErrUnavailable, cause: errors.New(`Get "http://h/t()?sv=1&sig=SECRET": dial tcp: refused`)}
	if strings.Contains(err.Error(), "SECRET") {
		t.Fatal(err)
	}
}

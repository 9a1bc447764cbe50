package azurite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// maxRequestBody is how much of a request body the proxy reads; anything
// larger is rejected as RequestBodyTooLarge without being forwarded.
const maxRequestBody = 64 << 20

// Proxy is an HTTP proxy on a free 127.0.0.1 port in front of Azurite. It
// rejects what real Azure rejects but Azurite accepts (see ValidateEntity and
// the package documentation) with Azure's status, error code and OData JSON
// error body, injects faults on command (SetFaults, Outage), and models
// Azure's scalability targets on command (SetTargets).
//
// All methods are safe for concurrent use; faults and statistics apply to
// every request the proxy receives from then on.
type Proxy struct {
	// URL is the proxy's root, http://127.0.0.1:PORT.
	URL string
	// ServiceURL is the table service endpoint through the proxy,
	// URL + "/devstoreaccount1".
	ServiceURL string
	// ConnectionString reaches the account through this proxy.
	ConnectionString string

	real bool       // a stand-in against a real account: forwards nothing
	t    testing.TB // the owning test (NewProxy), failed by misuse
	env  *Env

	upstream  *url.URL
	srv       *httptest.Server
	transport *http.Transport

	mu          sync.Mutex
	faults      Faults
	rng         *rng
	outageUntil time.Time
	limiter     *limiter // scalability targets; nil: none
	stats       Stats
}

func newProxy(upstream string, t testing.TB) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("bad upstream URL: %w", err)
	}
	p := &Proxy{
		t:        t,
		upstream: u,
		transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			// Azurite closes idle keep-alive connections after 5 s; close
			// ours first so a request never races that close.
			IdleConnTimeout: 3 * time.Second,
		},
	}
	p.resetLocked()
	p.srv = httptest.NewUnstartedServer(p)
	p.srv.Config.ErrorLog = nil
	p.srv.Start()
	p.URL = p.srv.URL
	p.ServiceURL = p.srv.URL + u.Path
	p.ConnectionString = connectionString(p.ServiceURL)
	return p, nil
}

// Close stops the proxy and closes its connections. NewProxy registers it
// with t.Cleanup; calling it again does nothing.
func (p *Proxy) Close() {
	if p.real || p.srv == nil {
		return
	}
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.transport.CloseIdleConnections()
}

// Table returns a client for table name through this proxy, with the
// harness's fast retry policy, or with opts if not nil (pass MaxRetries: -1
// to see every injected fault). It does not create the table.
func (p *Proxy) Table(t testing.TB, name string, opts ...*aztables.ClientOptions) *aztables.Client {
	t.Helper()
	var o *aztables.ClientOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	return tableClient(t, p.ConnectionString, name, o)
}

// AddOnlyTable is Env.AddOnlyTable through this proxy.
func (p *Proxy) AddOnlyTable(t testing.TB, name string) *aztables.Client {
	t.Helper()
	if p.real {
		return p.env.AddOnlyTable(t, name)
	}
	env := &Env{account: AccountName, key: AccountKey}
	return env.addOnlyClient(t, p.ServiceURL, name)
}

// ServeHTTP handles one client request: outage and fault decisions, then the
// strict rules, then forwarding to Azurite.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d := p.decide(r)
	switch {
	case d.outage:
		resetConnection(w)
		return
	case d.reset:
		resetConnection(w)
		return
	case d.status != 0:
		writeFaultStatus(w, d.status)
		return
	case d.throttle > 0:
		writeThrottle(w, d.throttle)
		return
	}
	if d.latency > 0 {
		select {
		case <-time.After(d.latency):
		case <-r.Context().Done():
			return
		}
	}

	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return // the client went away
	}
	if len(body) > maxRequestBody {
		p.reject(w, &Rejection{Status: http.StatusRequestEntityTooLarge, Code: CodeRequestBodyTooLarge, Message: msgRequestBodyTooLarge, Index: -1})
		return
	}
	if rej := checkRequest(r, body); rej != nil {
		p.reject(w, rej)
		return
	}
	if !p.admit(w, r, body) {
		return
	}

	if !isBatch(r) {
		body = escapeNonASCII(r.Method, body)
	}
	resp, err := p.forward(r, body)
	if err != nil {
		if r.Context().Err() == nil {
			writeAzureError(w, &Rejection{Status: http.StatusBadGateway, Code: "BadGateway",
				Message: "The strict proxy could not reach Azurite: " + err.Error()})
		}
		return
	}
	defer resp.Body.Close()
	p.count(func(s *Stats) { s.Forwarded++ })
	if d.dropAfterCommit {
		io.Copy(io.Discard, resp.Body) // let Azurite finish: the write is committed
		resetConnection(w)
		return
	}
	h := w.Header()
	for k, v := range resp.Header {
		if !hopHeader(k) {
			h[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// admit applies the scalability targets, if any, to a request that passed
// the strict rules: it waits their latency, then charges the request's
// entities or answers 503 ServerBusy. It reports whether to forward.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, body []byte) bool {
	p.mu.Lock()
	l := p.limiter
	p.mu.Unlock()
	if l == nil {
		return true
	}
	if l.latency > 0 {
		t := time.NewTimer(l.latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return false
		}
	}
	var ops []BatchOperation
	if isBatch(r) {
		ops, _ = ParseBatch(r.Header.Get("Content-Type"), body)
	}
	pk, n := cost(r, body, ops)
	if scope := l.take(pk, float64(n)); scope != "" {
		p.count(func(s *Stats) { s.Throttled[scope]++ })
		writeServerBusy(w, scope)
		return false
	}
	return true
}

// forward sends the request with its (already read) body to Azurite.
func (p *Proxy) forward(r *http.Request, body []byte) (*http.Response, error) {
	u := *p.upstream
	u.Path = r.URL.Path
	u.RawPath = r.URL.RawPath
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		if !hopHeader(k) {
			out.Header[k] = v
		}
	}
	out.ContentLength = int64(len(body))
	return p.transport.RoundTrip(out)
}

func hopHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Te", "Trailer", "Upgrade", "Content-Length":
		return true
	}
	return false
}

// reject answers with an Azure error: a plain one, or, for an operation in
// a batch (rej.Index >= 0), a 202 multipart response carrying it.
func (p *Proxy) reject(w http.ResponseWriter, rej *Rejection) {
	p.count(func(s *Stats) { s.Rejected[rej.Code]++ })
	if rej.Index >= 0 {
		writeBatchError(w, rej)
		return
	}
	writeAzureError(w, rej)
}

// resetConnection closes the client's connection with a TCP RST, without an
// HTTP response.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// failMisuse reports use of a fault knob where there is no proxy (a real
// account).
func (p *Proxy) failMisuse(what string) {
	msg := fmt.Sprintf("azurite: %s needs the local emulator's strict proxy, but the tests run against a real account (%s); unset it to run this test", what, EnvConnectionString)
	if p.t != nil {
		p.t.Helper()
		p.t.Fatal(msg)
	}
	panic(msg)
}

// Ping checks that the proxy and Azurite behind it answer, within ctx.
func (p *Proxy) Ping(ctx context.Context) error {
	if p.real {
		return nil
	}
	svc, err := aztables.NewServiceClientFromConnectionString(p.ConnectionString, clientOptions(nil))
	if err != nil {
		return err
	}
	_, err = svc.NewListTablesPager(nil).NextPage(ctx)
	if err != nil {
		return errors.New("azurite: proxy at " + hostOf(p.URL) + ": " + err.Error())
	}
	return nil
}

// String describes the proxy for test logs (no credentials).
func (p *Proxy) String() string {
	if p.real {
		return "azurite.Proxy(real account, no proxy)"
	}
	return "azurite.Proxy(" + hostOf(p.URL) + " -> " + hostOf(p.upstream.String()) + ")"
}

// Azurite 3.37 joins a single-entity request body's stream chunks as
// separate strings, so a multi-byte UTF-8 character split across two chunks
// (bodies over ~64 KiB) is stored as U+FFFD replacement characters, and the
// inflated string can even fail its 32K-character check. ($batch bodies are
// read correctly.) The proxy therefore forwards large bodies with every
// non-ASCII character \u-escaped, which means the same JSON. Azurite checks
// update and merge bodies against 1 MiB of UTF-8 (insert bodies against
// 4 MiB), so a body that escaping would push over that limit is forwarded
// as is.
const escapeThreshold = 16 << 10

func escapeNonASCII(method string, body []byte) []byte {
	if len(body) < escapeThreshold {
		return body
	}
	extra := 0
	for i := 0; i < len(body); {
		c := body[i]
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRune(body[i:])
		if r == utf8.RuneError && n == 1 {
			return body // not valid UTF-8: leave it to Azurite
		}
		if r > 0xFFFF {
			extra += 12 - n
		} else {
			extra += 6 - n
		}
		i += n
	}
	if extra == 0 {
		return body
	}
	limit := MaxBatchBytes
	if method != http.MethodPost {
		limit = MaxEntityBytes
	}
	if len(body)+extra > limit {
		return body
	}
	out := make([]byte, 0, len(body)+extra)
	const hex = "0123456789abcdef"
	u := func(v rune) {
		out = append(out, '\\', 'u', hex[v>>12&15], hex[v>>8&15], hex[v>>4&15], hex[v&15])
	}
	for i := 0; i < len(body); {
		c := body[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(body[i:])
		if r > 0xFFFF {
			r1, r2 := utf16.EncodeRune(r)
			u(r1)
			u(r2)
		} else {
			u(r)
		}
		i += n
	}
	return out
}

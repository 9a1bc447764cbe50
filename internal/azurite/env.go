package azurite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/goleak"
)

// EnvConnectionString names the environment variable that points the
// integration tests at a real storage account instead of Azurite.
const EnvConnectionString = "TABLELOG_TEST_CONNECTION_STRING"

// Env is the storage every test of one test binary shares: an Azurite
// started by Main and the strict proxy in front of it, or a real account.
// Its methods are safe for concurrent use by parallel tests.
type Env struct {
	// ConnectionString reaches the account through the strict proxy (or is
	// the real account's connection string).
	ConnectionString string
	// DirectConnectionString reaches Azurite directly, bypassing the strict
	// rules and faults (for tampering). Equal to ConnectionString against a
	// real account.
	DirectConnectionString string
	// Proxy is the shared strict proxy. Tests that inject faults on it must
	// not run in parallel with other tests of the binary; prefer NewProxy.
	// Against a real account it forwards nothing, and its fault knobs panic
	// (there is no test to fail): use NewProxy(t), which fails the test.
	Proxy *Proxy
	// Real reports whether the tests run against a real account
	// (TABLELOG_TEST_CONNECTION_STRING), without emulator or proxy.
	Real bool

	server   *Server // nil against a real account
	upstream string  // service URL behind proxies
	account  string
	key      string // empty if the real connection string carries a SAS
}

var current *Env

// Main runs the package's tests against one shared Env; call it from
// TestMain:
//
//	func TestMain(m *testing.M) { azurite.Main(m) }
//
// Without TABLELOG_TEST_CONNECTION_STRING it starts Azurite in memory on a
// free loopback port (installing it with npm ci first if it is missing and
// CI is not "true") and the strict proxy in front of it, runs the tests,
// stops both, and exits with the tests' status. If Azurite cannot start,
// the binary fails (exit 1) with the reason and Azurite's output; it never
// skips. On SIGINT/SIGTERM it stops Azurite before exiting, and on Linux the
// kernel kills Azurite if the binary dies any other way.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	env, cleanup, err := setup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "azurite: %v\n", err)
		return 1
	}
	current = env
	defer cleanup()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		if env.server != nil {
			env.server.close() // not the proxy: closing it waits for requests
		}
		fmt.Fprintf(os.Stderr, "azurite: stopped Azurite on %v\n", s)
		os.Exit(2)
	}()
	defer signal.Stop(sig)

	// Goroutines running now (the emulator's, the proxy's, the signal
	// watcher) are the harness's; any other still running after the tests
	// leaked from the code under test.
	ignore := goleak.IgnoreCurrent()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(append(leakIgnored(), ignore)...); err != nil {
			fmt.Fprintf(os.Stderr, "azurite: goroutines leaked by the tests: %v\n", err)
			return 1
		}
	}
	return code
}

// leakIgnored lists goroutines the leak check does not count: idle
// keep-alive connections of HTTP clients and servers, which the transport
// keeps by design.
func leakIgnored() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	}
}

func setup() (*Env, func(), error) {
	if cs := os.Getenv(EnvConnectionString); cs != "" {
		env, err := realEnv(cs)
		return env, func() {}, err
	}
	bin, err := findAzurite()
	if err != nil {
		return nil, nil, err
	}
	// A free port can be taken by a concurrent test binary before Azurite
	// binds it: retry on a fresh port.
	var srv *Server
	for attempt := 0; attempt < 3; attempt++ {
		srv, err = newServer(bin, ServerOptions{})
		if err != nil {
			return nil, nil, err
		}
		if err = srv.start(); err == nil {
			break
		}
		srv.close()
		srv = nil
	}
	if err != nil {
		return nil, nil, err
	}
	p, err := newProxy(srv.URL, nil)
	if err != nil {
		srv.close()
		return nil, nil, err
	}
	env := &Env{
		ConnectionString:       p.ConnectionString,
		DirectConnectionString: srv.ConnectionString,
		Proxy:                  p,
		server:                 srv,
		upstream:               srv.URL,
		account:                AccountName,
		key:                    AccountKey,
	}
	var once sync.Once
	return env, func() {
		once.Do(func() {
			p.Close()
			srv.close()
		})
	}, nil
}

// realEnv describes a real account. The connection string is never included
// in errors.
func realEnv(cs string) (*Env, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(strings.TrimSpace(cs), ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if _, err := aztables.NewServiceClientFromConnectionString(cs, nil); err != nil {
		return nil, fmt.Errorf("%s is not a valid storage connection string", EnvConnectionString)
	}
	endpoint := kv["TableEndpoint"]
	if endpoint == "" {
		proto, suffix := kv["DefaultEndpointsProtocol"], kv["EndpointSuffix"]
		if proto == "" {
			proto = "https"
		}
		if suffix == "" {
			suffix = "core.windows.net"
		}
		endpoint = fmt.Sprintf("%s://%s.table.%s", proto, kv["AccountName"], suffix)
	}
	env := &Env{
		ConnectionString:       cs,
		DirectConnectionString: cs,
		Real:                   true,
		upstream:               strings.TrimSuffix(endpoint, "/"),
		account:                kv["AccountName"],
		key:                    kv["AccountKey"],
	}
	env.Proxy = &Proxy{real: true, ConnectionString: cs, env: env}
	return env, nil
}

// Get returns the Env that Main set up. It fails the test if the package's
// TestMain does not call Main. Safe for concurrent use.
func Get(t testing.TB) *Env {
	t.Helper()
	if current == nil {
		t.Fatalf("azurite: Main did not run: add `func TestMain(m *testing.M) { azurite.Main(m) }` to this package's tests")
	}
	return current
}

// NewTable creates a table with a fresh unique name ("t" + 24 hex digits)
// through the shared proxy and returns a client for it; the table is deleted
// (directly, so faults cannot interfere) in t.Cleanup. It fails the test if
// the table cannot be created.
func (e *Env) NewTable(t testing.TB) *aztables.Client {
	t.Helper()
	name := NewTableName()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	svc := serviceClient(t, e.ConnectionString, nil)
	if _, err := svc.CreateTable(ctx, name, nil); err != nil {
		t.Fatalf("azurite: creating table %s: %v", name, err)
	}
	t.Cleanup(func() { e.deleteTable(t, name) })
	return registerInfo(svc.NewClient(name), clientInfo{name: name, cs: e.ConnectionString})
}

func (e *Env) deleteTable(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := serviceClient(t, e.DirectConnectionString, nil).DeleteTable(ctx, name, nil)
	var re *azcore.ResponseError
	if err != nil && !(errors.As(err, &re) && re.StatusCode == 404) {
		t.Logf("azurite: deleting table %s: %v", name, err)
	}
}

// NewTableName returns a fresh valid table name: "t" and 24 random hex digits.
func NewTableName() string {
	var b [12]byte
	rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:])
}

// Table returns a client for table name through the shared strict proxy.
// It does not create the table. Harness clients retry like the SDK's default
// policy (3 retries) but with short backoff (10–40 ms), honouring a
// Retry-After of up to 5 s.
func (e *Env) Table(t testing.TB, name string) *aztables.Client {
	t.Helper()
	return tableClient(t, e.ConnectionString, name, nil)
}

// DirectTable returns a client for table name straight to Azurite: no strict
// rules, no faults. Use it to plant or inspect data behind the code under
// test's back.
func (e *Env) DirectTable(t testing.TB, name string) *aztables.Client {
	t.Helper()
	return tableClient(t, e.DirectConnectionString, name, nil)
}

// AddOnlyTable returns a client for table name through the shared proxy,
// authorized only by an account SAS with ss=t, srt=o, sp=a: it can insert
// entities (single and in batches) but not read, update, delete, or create
// tables. (Azurite rejects batches under a table SAS, hence an account
// SAS.) It fails the test if the account key is unknown (a real account
// given by a SAS connection string).
func (e *Env) AddOnlyTable(t testing.TB, name string) *aztables.Client {
	t.Helper()
	base := e.upstream
	if e.Proxy != nil && !e.Proxy.real {
		base = e.Proxy.ServiceURL
	}
	return e.addOnlyClient(t, base, name)
}

func (e *Env) addOnlyClient(t testing.TB, serviceURL, name string) *aztables.Client {
	t.Helper()
	if e.key == "" {
		t.Fatalf("azurite: AddOnlyTable needs an account key; %s has none", EnvConnectionString)
	}
	cred, err := aztables.NewSharedKeyCredential(e.account, e.key)
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	proto := aztables.SASProtocolHTTPS
	if strings.HasPrefix(serviceURL, "http:") {
		proto = aztables.SASProtocolHTTPSandHTTP
	}
	qp, err := aztables.AccountSASSignatureValues{
		Protocol:      proto,
		StartTime:     time.Now().Add(-time.Hour).UTC(),
		ExpiryTime:    time.Now().Add(24 * time.Hour).UTC(),
		Permissions:   aztables.AccountSASPermissions{Add: true}.String(),
		Services:      "t",
		ResourceTypes: aztables.AccountSASResourceTypes{Object: true}.String(),
	}.Sign(cred)
	if err != nil {
		t.Fatalf("azurite: signing account SAS: %v", err)
	}
	sasURL := strings.TrimSuffix(serviceURL, "/") + "/?" + qp.Encode()
	svc, err := aztables.NewServiceClientWithNoCredential(sasURL, clientOptions(nil))
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	return registerInfo(svc.NewClient(name), clientInfo{name: name, sasURL: sasURL})
}

// NewProxy starts a strict proxy of the test's own in front of the shared
// Azurite, closed in t.Cleanup: faults set on it disturb no other test.
// Against a real account the returned proxy forwards nothing: its
// ConnectionString is the real one and its fault knobs fail the test.
func (e *Env) NewProxy(t testing.TB) *Proxy {
	t.Helper()
	if e.Real {
		return &Proxy{real: true, t: t, ConnectionString: e.ConnectionString, env: e}
	}
	p, err := newProxy(e.upstream, t)
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	p.env = e
	t.Cleanup(p.Close)
	return p
}

// clientOptions returns the harness's client options: the SDK's retry count
// with short backoff (10, 20, 40 ms), so tests that meet a transient fault
// stay fast. MaxRetryDelay stays at 5 s because azcore does not retry at all
// when a Retry-After exceeds it.
func clientOptions(o *aztables.ClientOptions) *aztables.ClientOptions {
	if o != nil {
		return o
	}
	return &aztables.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{
		MaxRetries:    3,
		RetryDelay:    10 * time.Millisecond,
		MaxRetryDelay: 5 * time.Second,
	}}}
}

func serviceClient(t testing.TB, cs string, o *aztables.ClientOptions) *aztables.ServiceClient {
	t.Helper()
	svc, err := aztables.NewServiceClientFromConnectionString(cs, clientOptions(o))
	if err != nil {
		t.Fatalf("azurite: invalid connection string: %v", redact(err))
	}
	return svc
}

func tableClient(t testing.TB, cs, name string, o *aztables.ClientOptions) *aztables.Client {
	t.Helper()
	c := serviceClient(t, cs, o).NewClient(name)
	info := clientInfo{name: name, cs: cs}
	if o != nil {
		info.options = &o.ClientOptions
	}
	return registerInfo(c, info)
}

// clientInfo is how the harness built an aztables client: enough to build
// a tablelog.Client for the same table and credential.
type clientInfo struct {
	name   string
	cs     string // connection string, or
	sasURL string // service SAS URL
	// options are custom azcore options the client was made with (nil:
	// the harness's); the twin takes their retry and transport settings.
	options *policy.ClientOptions
}

// names maps the clients this package made to their clientInfo (aztables
// does not expose a client's table name).
var names sync.Map // *aztables.Client -> clientInfo

func register(c *aztables.Client, name string) *aztables.Client {
	return registerInfo(c, clientInfo{name: name})
}

func registerInfo(c *aztables.Client, info clientInfo) *aztables.Client {
	names.Store(c, info)
	return c
}

// TableName returns the name of the table of a client made by this package
// (NewTable, Table, DirectTable, AddOnlyTable, ...), or "" for other
// clients. Safe for concurrent use.
func TableName(c *aztables.Client) string {
	info, _ := names.Load(c)
	i, _ := info.(clientInfo)
	return i.name
}

// redact keeps only the error's type of problem: connection-string parsing
// errors may quote the string.
func redact(err error) error {
	if strings.Contains(err.Error(), "AccountKey") || strings.Contains(err.Error(), "SharedAccessSignature") {
		return errors.New("connection string rejected by the SDK")
	}
	return err
}

// hostOf returns host:port of a URL, for messages.
func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	return p.Host
}

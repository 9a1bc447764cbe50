package azurite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/account"
)

// The emulator's well-known development account. The key is public (it is
// printed in Azurite's documentation); it is still never written to logs or
// error messages by this package.
const (
	AccountName = account.EmulatorAccount
	AccountKey  = account.EmulatorKey
)

// Timeouts for starting and stopping the emulator. Node starts Azurite in
// about a second; the margin covers a loaded 2-core CI machine on which every
// test binary starts its own emulator at the same time.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 10 * time.Second
)

// installHint is the message a missing Azurite fails with in CI.
const installHint = "Azurite is not installed: run `make test` (or `npm ci --prefix internal/azurite`)"

// ServerOptions configures StartServer.
type ServerOptions struct {
	// Dir is the workspace Azurite persists its tables in (--location).
	// Empty means in memory (--inMemoryPersistence): nothing survives Stop.
	Dir string
	// Port to listen on; 0 picks a free loopback port once, and restarts
	// reuse it.
	Port int
}

// Server is one Azurite table-service process on a fixed 127.0.0.1 port.
// Stop and Start may be called any number of times, in any order, from one
// goroutine at a time (they serialize on a mutex); the port, the connection
// string and, with ServerOptions.Dir, the data survive a restart.
type Server struct {
	// ConnectionString reaches this server directly (no strict proxy).
	ConnectionString string
	// URL is the table service endpoint, http://127.0.0.1:PORT/devstoreaccount1.
	URL string
	// Port is the loopback port the server listens on.
	Port int

	t    testing.TB // fails Start/Stop; nil for Main's server
	bin  string
	opts ServerOptions
	work string // working directory of the process

	mu   sync.Mutex
	proc *process
}

// StartServer starts a dedicated Azurite for one test (typically with disk
// persistence, for restart tests) and stops it in t.Cleanup. It fails the
// test if Azurite is missing or does not come up; against a real account
// (TABLELOG_TEST_CONNECTION_STRING) it fails the test, since a real service
// cannot be stopped. Call from the test goroutine.
func StartServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	if os.Getenv(EnvConnectionString) != "" {
		t.Fatalf("azurite: StartServer needs the local emulator; unset %s to run this test", EnvConnectionString)
	}
	bin, err := findAzurite()
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	s, err := newServer(bin, opts)
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	s.t = t
	t.Cleanup(func() { s.stop(false) })
	if err := s.start(); err != nil {
		t.Fatalf("azurite: %v", err)
	}
	return s
}

// Start starts the server again after Stop, on the same port. It blocks until
// the server answers and fails the test if it does not. Starting a running
// server does nothing.
func (s *Server) Start() {
	if s.t != nil {
		s.t.Helper()
	}
	if err := s.start(); err != nil {
		s.fail(err)
	}
}

// Stop shuts the server down gracefully (SIGINT, so Azurite saves its
// database), waits for it to exit and kills it if it takes longer than 10 s.
// Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if err := s.stop(true); err != nil {
		s.fail(err)
	}
}

// Kill stops the server abruptly (SIGKILL), as a crash would: with disk
// persistence, writes Azurite had not yet saved are lost.
func (s *Server) Kill() {
	if err := s.stop(false); err != nil {
		s.fail(err)
	}
}

// Table returns a client for table name straight to this server, with the
// harness's fast retry policy. It does not create the table.
func (s *Server) Table(t testing.TB, name string) *aztables.Client {
	t.Helper()
	return tableClient(t, s.ConnectionString, name, nil)
}

// NewProxy starts a strict proxy in front of this server, closed in
// t.Cleanup. The proxy keeps working across Stop/Start; while the server is
// down it answers like any unreachable upstream (502).
func (s *Server) NewProxy(t testing.TB) *Proxy {
	t.Helper()
	p, err := newProxy(s.URL, t)
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

func (s *Server) fail(err error) {
	if s.t == nil {
		panic("azurite: " + err.Error())
	}
	s.t.Helper()
	s.t.Fatalf("azurite: %v", err)
}

func newServer(bin string, opts ServerOptions) (*Server, error) {
	port := opts.Port
	if port == 0 {
		var err error
		if port, err = freePort(); err != nil {
			return nil, err
		}
	}
	work, err := os.MkdirTemp("", "tablelog-azurite-")
	if err != nil {
		return nil, err
	}
	if opts.Dir != "" {
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, err
		}
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/%s", port, AccountName)
	return &Server{
		ConnectionString: connectionString(url),
		URL:              url,
		Port:             port,
		bin:              bin,
		opts:             opts,
		work:             work,
	}, nil
}

func connectionString(serviceURL string) string {
	return "DefaultEndpointsProtocol=http;AccountName=" + AccountName + ";AccountKey=" + AccountKey + ";TableEndpoint=" + serviceURL + ";"
}

func (s *Server) args() []string {
	a := []string{
		"--tableHost", "127.0.0.1",
		"--tablePort", strconv.Itoa(s.Port),
		"--skipApiVersionCheck",
		"--disableTelemetry",
		"--silent",
	}
	if s.opts.Dir == "" {
		a = append(a, "--inMemoryPersistence")
	} else {
		a = append(a, "--location", s.opts.Dir)
	}
	return a
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.exited() {
		return nil
	}
	p, err := startProcess(s.bin, s.args(), s.work)
	if err != nil {
		return err
	}
	s.proc = p
	if err := waitReady(s.URL, s.Port, p); err != nil {
		p.kill()
		s.proc = nil
		return err
	}
	return nil
}

func (s *Server) stop(graceful bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return nil
	}
	p := s.proc
	s.proc = nil
	if graceful {
		p.interrupt()
		select {
		case <-p.done:
			return nil
		case <-time.After(stopTimeout):
			p.kill()
			return fmt.Errorf("azurite did not stop within %v after SIGINT; killed it\n%s", stopTimeout, p.output())
		}
	}
	p.kill()
	return nil
}

// close stops the server and removes its working directory (Main's cleanup).
func (s *Server) close() {
	s.stop(false)
	os.RemoveAll(s.work)
}

// process is a running azurite-table child in its own process group.
type process struct {
	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done
}

func startProcess(bin string, args []string, dir string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out := &tailBuffer{max: 32 << 10}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &process{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) kill() {
	killGroup(p.cmd.Process)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
	}
}

func (p *process) interrupt() { interruptGroup(p.cmd.Process) }

func (p *process) output() string {
	s := strings.TrimSpace(p.out.String())
	if s == "" {
		return "(azurite printed nothing)"
	}
	return "azurite output:\n" + s
}

// waitReady polls the port until it accepts connections and then lists tables
// until the service answers, or fails after startTimeout or when the process
// exits.
func waitReady(serviceURL string, port int, p *process) error {
	deadline := time.Now().Add(startTimeout)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	client, err := aztables.NewServiceClientFromConnectionString(connectionString(serviceURL),
		&aztables.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{MaxRetries: -1}}})
	if err != nil {
		return err
	}
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("azurite exited during startup (%v)\n%s", p.err, p.output())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			last = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = client.NewListTablesPager(nil).NextPage(ctx)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("azurite did not answer on %s within %v (last error: %v)\n%s", addr, startTimeout, last, p.output())
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// packageDir returns this package's source directory, which holds
// package.json and node_modules. It uses the path compiled into the binary,
// so it works from any package's test binary; with -trimpath it falls back to
// walking up from the working directory to go.mod.
func packageDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if ok && filepath.IsAbs(file) {
		return filepath.Dir(file), nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "internal", "azurite"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("cannot locate internal/azurite: no go.mod above " + wd)
		}
	}
}

var installMu sync.Mutex

// findAzurite returns the path of node_modules/.bin/azurite-table, running
// `npm ci` once if it is missing outside CI.
func findAzurite() (string, error) {
	dir, err := packageDir()
	if err != nil {
		return "", err
	}
	return findAzuriteIn(dir)
}

func findAzuriteIn(dir string) (string, error) {
	bin := filepath.Join(dir, "node_modules", ".bin", "azurite-table")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if os.Getenv("CI") == "true" {
		return "", errors.New(installHint)
	}
	installMu.Lock()
	defer installMu.Unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	unlock, err := lockFile(filepath.Join(dir, ".npm-install.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil { // another test binary installed it
		return bin, nil
	}
	fmt.Fprintf(os.Stderr, "azurite: %s is missing; running npm ci --prefix %s\n", bin, dir)
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--prefix", dir)
	out, err := cmd.CombinedOutput()
	if _, serr := os.Stat(bin); serr != nil {
		return "", fmt.Errorf("%s (npm ci failed: %v)\n%s", installHint, err, tail(out, 4<<10))
	}
	// The Makefile's stamp, so `make test` does not reinstall.
	if f, err := os.Create(filepath.Join(dir, "node_modules", ".installed")); err == nil {
		f.Close()
	}
	return bin, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// tailBuffer is a concurrency-safe writer that keeps the last max bytes.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

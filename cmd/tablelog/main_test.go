package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tablelog/tablelog/internal/azurite"
	"github.com/tablelog/tablelog/sink"
)

func TestMain(m *testing.M) { azurite.Main(m) }

// raceBuild is set when the tests run with -race (race_test.go).
var raceBuild bool

// buildBinary builds the command into dir with go build (-race when the
// tests run with it).
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tablelog")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	gotool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gotool); err != nil {
		gotool = "go"
	}
	args := []string{"build", "-o", bin}
	if raceBuild {
		args = append(args, "-race")
	}
	out, err := exec.Command(gotool, append(args, ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// e2eTests are the end-to-end tests: each runs the built binary against
// Azurite (through the strict proxy), in parallel with the others.
var e2eTests = map[string]func(t *testing.T, bin string){}

// TestCLI builds the binary once and runs the end-to-end tests as its
// subtests (go test -run 'TestCLI/golden').
func TestCLI(t *testing.T) {
	bin := buildBinary(t, t.TempDir())
	for name, fn := range e2eTests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, bin)
		})
	}
}

// cli runs the built binary against one table pair.
type cli struct {
	t       *testing.T
	bin     string
	cs      string            // TABLELOG_CONNECTION_STRING
	extra   map[string]string // more environment
	logs    string            // --logs-table
	audit   string            // --audit-table
	timeout time.Duration
}

// result is one run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// newCLI returns a runner for a fresh logs table (and audit table name, if
// audit is not nil).
func newCLI(t *testing.T, bin string, logs, audit *aztables.Client) *cli {
	t.Helper()
	env := azurite.Get(t)
	c := &cli{t: t, bin: bin, cs: env.ConnectionString, timeout: 60 * time.Second, extra: map[string]string{"TZ": "UTC"}}
	if logs != nil {
		c.logs = azurite.TableName(logs)
	}
	if audit != nil {
		c.audit = azurite.TableName(audit)
	}
	return c
}

// environ is the child's environment: this process's, without anything
// that changes the CLI's behaviour, plus the connection and c.extra.
func (c *cli) environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "TABLELOG_"), strings.HasPrefix(k, "AZURE_"), k == "NO_COLOR", k == "TZ", k == "TERM", k == "GORACE":
			continue
		}
		out = append(out, kv)
	}
	if raceBuild {
		// No 1 s sleep at exit; a race found makes the exit code 66,
		// which fails the test.
		out = append(out, "GORACE=atexit_sleep_ms=0")
	}
	if c.cs != "" {
		out = append(out, envConnectionString+"="+c.cs)
	}
	for k, v := range c.extra {
		out = append(out, k+"="+v)
	}
	return out
}

// args adds the table flags after the subcommand (and audit's
// sub-subcommand).
func (c *cli) args(args []string) []string {
	var tables []string
	if c.logs != "" {
		tables = append(tables, "--logs-table", c.logs)
	}
	if c.audit != "" {
		tables = append(tables, "--audit-table", c.audit)
	}
	n := 1
	if len(args) > 1 && args[0] == "audit" {
		n = 2
	}
	if len(args) < n {
		return args
	}
	return append(append(append([]string{}, args[:n]...), tables...), args[n:]...)
}

// run runs the binary with args and waits.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, c.args(args)...)
	cmd.Env = c.environ()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			c.t.Fatalf("running %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustRun runs args and fails the test unless the exit code is want.
func (c *cli) mustRun(want int, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != want {
		c.t.Fatalf("tablelog %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// process is a running binary whose stdout is read line by line.
type process struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *lockedBuffer
	done   chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start starts the binary with args.
func (c *cli) start(args ...string) *process {
	c.t.Helper()
	cmd := exec.Command(c.bin, c.args(args)...)
	cmd.Env = c.environ()
	p := &process{cmd: cmd, lines: make(chan string, 1000), stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	c.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return p
}

// next returns the next line of stdout, failing after d.
func (p *process) next(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case l := <-p.lines:
		return l
	case <-time.After(d):
		t.Fatalf("no output line within %v; stderr:\n%s", d, p.stderr.String())
	}
	return ""
}

// seeder writes log records through the sink, with exact times.
type seeder struct {
	t    *testing.T
	tbl  *aztables.Client
	sink map[string]*sink.Sink
}

func newSeeder(t *testing.T, tbl *aztables.Client) *seeder {
	s := &seeder{t: t, tbl: tbl, sink: map[string]*sink.Sink{}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, sk := range s.sink {
			_ = sk.Close(ctx)
		}
	})
	return s
}

func (s *seeder) get(service string) *sink.Sink {
	s.t.Helper()
	sk, ok := s.sink[service]
	if !ok {
		var err error
		sk, err = sink.New(azurite.Tablelog(s.t, s.tbl), sink.Options{
			Service:       service,
			NoCreateTable: true,
			FlushInterval: 20 * time.Millisecond,
			ErrorHandler:  func(err error) { s.t.Errorf("sink %s: %v", service, err) },
		})
		if err != nil {
			s.t.Fatal(err)
		}
		s.sink[service] = sk
	}
	return sk
}

// zap writes one record through the zap core.
func (s *seeder) zap(service string, at time.Time, lvl zapcore.Level, logger, msg string, fields ...zap.Field) {
	s.t.Helper()
	ent := zapcore.Entry{Level: lvl, Time: at, LoggerName: logger, Message: msg}
	if err := s.get(service).Core(zapcore.DebugLevel).Write(ent, fields); err != nil {
		s.t.Fatal(err)
	}
}

// slog writes one record through the slog handler.
func (s *seeder) slog(service string, at time.Time, lvl slog.Level, msg string, attrs ...slog.Attr) {
	s.t.Helper()
	r := slog.NewRecord(at, lvl, msg, 0)
	r.AddAttrs(attrs...)
	if err := s.get(service).Handler(&slog.HandlerOptions{Level: slog.LevelDebug}).Handle(context.Background(), r); err != nil {
		s.t.Fatal(err)
	}
}

// flush stores everything written so far.
func (s *seeder) flush() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, sk := range s.sink {
		if err := sk.Flush(ctx); err != nil {
			s.t.Fatalf("flush %s: %v", name, err)
		}
	}
}

var idRE = regexp.MustCompile(`"id":"[0-9A-HJKMNP-TV-Z]{26}"`)

// normalizeIDs replaces the random ULIDs of json output.
func normalizeIDs(s string) string { return idRE.ReplaceAllString(s, `"id":"<ULID>"`) }

func init() {
	e2eTests["usage"] = testUsageBinary
}

// usageCases are command lines that must exit 2 with a message on stderr
// and nothing on stdout.
var usageCases = []struct {
	args []string
	want string
}{
	{nil, "Usage:"},
	{[]string{"frobnicate"}, `unknown command "frobnicate"`},
	{[]string{"tail", "--bogus"}, "flag provided but not defined: -bogus"},
	{[]string{"tail", "-n", "many"}, `invalid value "many" for flag -n`},
	{[]string{"tail", "-n", "-1", "-s", "x"}, "-n must not be negative"},
	{[]string{"tail", "-s", "bad service"}, `has the character ' '`},
	{[]string{"tail", "-s", "x", "--since", "yesterday"}, `--since: "yesterday" is neither`},
	{[]string{"tail", "-s", "x", "--since", "1h", "--until", "2h"}, "is not before --until"},
	{[]string{"tail", "-s", "x", "--level", "loud"}, `tablelog tail: --level: "loud" is not a level: use debug, info, warn, error`},
	{[]string{"tail", "-s", "x", "--where", "a=1 and (b=2"}, `unbalanced "("`},
	{[]string{"tail", "-s", "x", "--grep", "(["}, "--grep: error parsing regexp"},
	{[]string{"tail", "-s", "x", "-o", "xml"}, `unknown output format "xml"`},
	{[]string{"tail", "-s", "x", "--color", "rainbow"}, "--color must be auto, always or never"},
	{[]string{"tail", "-s", "x", "--poll", "0s"}, "--poll and --lookback must be positive"},
	{[]string{"tail", "-s", "x", "--logs-table", "no-dashes"}, "is not a valid table name"},
	{[]string{"query", "-s", "x", "--limit", "-5"}, "--limit must not be negative"},
	{[]string{"query", "-s", "x", "--connection-string", "cs", "--account-url", "https://a.table.core.windows.net"}, "cannot be combined"},
	{[]string{"query", "-s", "x", "--account-url", "ftp://nope"}, "not an http(s) URL"},
	{[]string{"services", "-o", "yaml"}, "-o must be text or json"},
	{[]string{"prune"}, "--before is required"},
	{[]string{"prune", "--before", "soon"}, `--before: "soon" is neither`},
	{[]string{"prune", "--before", "30d", "extra"}, `unexpected argument "extra"`},
	{[]string{"audit"}, "a subcommand is required"},
	{[]string{"audit", "erase"}, `unknown subcommand "erase"`},
	{[]string{"audit", "verify", "--expect-head", "12"}, "--expect-head: expected SEQ:HASH"},
	{[]string{"audit", "verify", "--key-file", "/nonexistent/key"}, "--key-file"},
	// A bad service name: schema's own words, after the command's prefix
	// and nothing else.
	{[]string{"services", "a b"}, "tablelog services: service name \"a b\" has the character ' '"},
	{[]string{"tail", "-s", "a/b"}, "tablelog tail: service name \"a/b\" has the character '/'"},
	{[]string{"query", "-s", "x\xff"}, `tablelog query: service name "x\xff" has invalid UTF-8 at byte 1`},
	{[]string{"prune", "--before", "30d", "-s", "a b"}, "tablelog prune: service name \"a b\""},
	{[]string{"audit", "ls", "-s", "a b"}, "tablelog audit ls: service name \"a b\""},
	{[]string{"audit", "verify", "-s", "a b"}, "tablelog audit verify: service name \"a b\""},
}

// TestUsage runs the usage cases in process (no service is contacted).
func TestUsage(t *testing.T) {
	for _, tt := range usageCases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tt.args, nil, &stdout, &stderr, envMap(nil))
		if code != exitUsage || stdout.Len() != 0 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("tablelog %s: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr containing %q", strings.Join(tt.args, " "), code, stdout.String(), stderr.String(), tt.want)
		}
	}
}

// TestHelp: --help on every command prints its usage with examples on
// stdout and exits 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"--help"}, {"help"}, {"-h"},
		{"tail", "--help"}, {"tail", "-h"}, {"help", "tail"}, {"query", "--help"}, {"services", "--help"},
		{"prune", "--help"}, {"audit", "--help"}, {"audit", "ls", "--help"}, {"audit", "verify", "--help"}, {"audit", "export", "--help"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, nil, &stdout, &stderr, envMap(nil))
		out := stdout.String()
		if code != exitOK || stderr.Len() != 0 || !strings.Contains(out, "Usage:") {
			t.Errorf("tablelog %s: exit %d, stderr %q, stdout:\n%s", strings.Join(args, " "), code, stderr.String(), out)
		}
		if len(args) > 1 && args[0] != "help" {
			if !strings.Contains(out, "Examples:") || !(len(args) == 2 && args[0] == "audit") && !strings.Contains(out, "Flags:") {
				t.Errorf("tablelog %s: no examples or flags:\n%s", strings.Join(args, " "), out)
			}
		}
	}
}

// TestEmulatorNotice: with no connection configured, the emulator is used
// and one line on stderr says so.
func TestEmulatorNotice(t *testing.T) {
	var stdout, stderr bytes.Buffer
	a := newApp(nil, &stdout, &stderr, envMap(nil))
	tb, err := a.connect("tail", connFlags{logsTable: "logs", auditTable: "audit"})
	if err != nil {
		t.Fatal(err)
	}
	if tb.ep.kind != kindEmulator {
		t.Errorf("kind %s", tb.ep.kind)
	}
	lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "using the local emulator at http://127.0.0.1:10002/devstoreaccount1") {
		t.Errorf("notice: %q", stderr.String())
	}
	if strings.Contains(stderr.String(), emulatorKey) {
		t.Error("notice prints the emulator key")
	}
	// Configured: no notice.
	stderr.Reset()
	a = newApp(nil, &stdout, &stderr, envMap(map[string]string{envConnectionString: testCS}))
	if _, err := a.connect("tail", connFlags{logsTable: "logs", auditTable: "audit"}); err != nil {
		t.Fatal(err)
	}
	if stderr.Len() != 0 {
		t.Errorf("notice with a connection string: %q", stderr.String())
	}
}

// testUsageBinary checks exit codes of the real binary.
func testUsageBinary(t *testing.T, bin string) {
	c := newCLI(t, bin, nil, nil)
	for _, tt := range usageCases[:6] {
		r := c.run(tt.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("tablelog %s: exit %d, stderr:\n%s", strings.Join(tt.args, " "), r.code, r.stderr)
		}
	}
	r := c.mustRun(0, "tail", "--help")
	if !strings.Contains(r.stdout, "Examples:") {
		t.Errorf("tail --help:\n%s", r.stdout)
	}
	r = c.mustRun(0, "version")
	if !strings.HasPrefix(r.stdout, "tablelog ") {
		t.Errorf("version: %q", r.stdout)
	}
}

// Command tablelog reads the logs and audit trails that tablelog's sink and
// auditlog packages store in Azure Table Storage (or the Cosmos DB Table
// API, or the local Azurite emulator).
//
//	tablelog tail -s checkout -f                      # the last 50 records, then follow
//	tablelog tail -s checkout --level warn --since 1h --where 'status>=500'
//	tablelog query -s checkout --since 2025-11-24 --until 2025-11-25 -o json | jq .
//	tablelog services                                 # services and their days
//	tablelog audit verify -s billing --since 7d       # exit 1 on any break of the hash chain
//	tablelog prune --before 30d --yes                 # retention, whole day partitions
//	tablelog web                                      # browser view at http://127.0.0.1:8080/
//
// Every subcommand takes the same connection flags (see conn.go): a
// connection string (flag or TABLELOG_CONNECTION_STRING or
// AZURE_STORAGE_CONNECTION_STRING), an account URL with Microsoft Entra ID,
// a SAS, or, with none of them, the local emulator. Exit codes: 0 success,
// 1 failure (including a broken audit chain), 2 usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/tablelog/tablelog/query"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is the whole program: it parses args (without the program name),
// runs the subcommand and returns the exit code. env looks up environment
// variables (os.Getenv in main). Cancelling ctx (SIGINT, SIGTERM) stops the
// subcommand; tail -f then exits 0.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	return newApp(stdin, stdout, stderr, env).run(ctx, args)
}

// app holds the program's environment. Tests build one with a fixed clock,
// zone and terminal answers to get golden output.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	env            func(string) string

	now func() time.Time // the clock: relative times (--since 10m) and prune's "today"
	loc *time.Location   // the zone of text output without --utc
	// isTerminal reports whether w is an interactive terminal (colour in
	// auto mode, prune's progress line).
	isTerminal func(w io.Writer) bool
	// stdinTerminal, if not nil, replaces the check that stdin is an
	// interactive terminal (prune's confirmation); for tests.
	stdinTerminal func() bool

	secrets  []string // values redacted from every message (keys, SAS tokens)
	emulator bool     // the connection is the local emulator

	usages map[*flag.FlagSet]func() // the --help printer of each flag set
}

func newApp(stdin io.Reader, stdout, stderr io.Writer, env func(string) string) *app {
	if env == nil {
		env = func(string) string { return "" }
	}
	a := &app{
		stdin:      stdin,
		stdout:     stdout,
		stderr:     stderr,
		env:        env,
		now:        time.Now,
		loc:        time.Local,
		isTerminal: isTerminal,
	}
	for _, name := range []string{envConnectionString, envAzureConnectionString} {
		a.secrets = append(a.secrets, connStringSecrets(env(name))...)
	}
	if k := env(envAuditKey); k != "" {
		a.secrets = append(a.secrets, k)
	}
	return a
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(a *app, ctx context.Context, args []string) error
}

var commands = []command{
	{"tail", "show the last records of services, and follow new ones with -f", (*app).tail},
	{"query", "search records, newest first", (*app).query},
	{"services", "list the services and the days they have logs for", (*app).services},
	{"audit", "list, verify and export audit trails (ls, verify, export)", (*app).audit},
	{"prune", "delete whole days of logs older than a date", (*app).prune},
	{"web", "serve a read-only browser view of logs and audit trails", (*app).web},
}

const mainUsage = `tablelog reads structured logs and audit trails stored in Azure Table Storage.

Usage:

	tablelog <command> [flags]

Commands:

%s
Run 'tablelog <command> --help' for the flags and examples of a command.

Connection (every command):

	--connection-string CS   a storage connection string (or TABLELOG_CONNECTION_STRING,
	                         or AZURE_STORAGE_CONNECTION_STRING)
	--account-url URL        https://ACCOUNT.table.core.windows.net, signed in with
	                         Microsoft Entra ID (az login, managed identity, env vars, ...)
	--sas SAS                a SAS token (with --account-url) or a SAS URL
	(none of them)           the local emulator (Azurite) at 127.0.0.1:10002

Exit codes: 0 success, 1 failure, 2 usage error.
`

func (a *app) printMainUsage(w io.Writer) {
	var b strings.Builder
	for _, c := range commands {
		fmt.Fprintf(&b, "\t%-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainUsage, b.String())
}

func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		a.printMainUsage(a.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if name == "help" && len(args) > 1 {
			// "tablelog help tail" is "tablelog tail --help".
			return a.run(ctx, []string{args[1], "--help"})
		}
		a.printMainUsage(a.stdout)
		return exitOK
	case "version", "--version", "-version":
		fmt.Fprintln(a.stdout, "tablelog", version())
		return exitOK
	}
	for _, c := range commands {
		if c.name == name {
			return a.exit(name, c.run(a, ctx, args[1:]))
		}
	}
	fmt.Fprintf(a.stderr, "tablelog: unknown command %q\nRun 'tablelog --help' for the list of commands.\n", a.redact(name))
	return exitUsage
}

// exit turns the error of command name into an exit code, printing it
// (redacted) on stderr.
func (a *app) exit(name string, err error) int {
	var ue *usageError
	var ee exitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "tablelog %s: %s\nRun 'tablelog %s --help' for usage.\n", ue.cmd, a.redact(ue.msg), ue.cmd)
		return exitUsage
	case errors.As(err, &ee):
		return int(ee)
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(a.stderr, "tablelog %s: interrupted\n", name)
		return exitFail
	default:
		fmt.Fprintf(a.stderr, "tablelog %s: %s\n", name, a.redact(a.describeError(err)))
		return exitFail
	}
}

// describeError is the message of a command's error for the terminal: the
// error's own message (whose package prefix, "tablelog/query: " or
// "auditlog: ", says which layer failed), with a hint for the usual causes.
func (a *app) describeError(err error) string {
	msg := err.Error()
	switch {
	case a.emulator && strings.Contains(msg, "connection refused"):
		msg += "\n(is the emulator running? start Azurite with 'make demo', or pass --connection-string)"
	case errors.Is(err, query.ErrTableNotFound):
		msg += "\n(check --logs-table / --audit-table and the account)"
	case errors.Is(err, query.ErrAuth):
		msg += "\n(the credentials were refused or cannot read this table)"
	}
	return msg
}

// usageError is a mistake in the command line: exit code 2.
type usageError struct {
	cmd string
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// exitError ends a command with the given code; the command printed what
// there was to say.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// newFlagSet returns a flag set for command name whose --help prints usage
// (the command's text, then its flags) on stdout.
func (a *app) newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("tablelog "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // the flag package calls it on errors too
	if a.usages == nil {
		a.usages = map[*flag.FlagSet]func(){}
	}
	a.usages[fs] = func() {
		w := a.stdout
		fmt.Fprint(w, strings.TrimLeft(usage, "\n"))
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args with fs, allowing flags and positional arguments
// in any order ("tail checkout -f" and "tail -f checkout"); everything after
// "--" is positional. --help prints the usage and returns flag.ErrHelp.
// Other errors are usage errors.
func (a *app) parseFlags(fs *flag.FlagSet, cmd string, args []string) ([]string, error) {
	a.noteSecrets(args)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				a.usages[fs]()
				return nil, flag.ErrHelp
			}
			return nil, &usageError{cmd: cmd, msg: err.Error()}
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// noteSecrets registers, before anything else looks at args, the values of
// the flags that carry secrets, so that no message (not even a usage error
// about another flag) can print them.
func (a *app) noteSecrets(args []string) {
	for i, arg := range args {
		if arg == "--" {
			return
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !strings.HasPrefix(arg, "-") {
			continue
		}
		if !hasValue {
			if i+1 >= len(args) {
				continue
			}
			value = args[i+1]
		}
		switch name {
		case "connection-string":
			a.secrets = append(a.secrets, connStringSecrets(value)...)
		case "sas":
			a.secrets = append(a.secrets, sasSecrets(value)...)
		}
	}
}

// version returns the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

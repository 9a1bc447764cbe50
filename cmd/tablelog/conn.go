package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/account"
	"github.com/tablelog/tablelog/internal/azure"
)

// Environment variables read for the connection, in order of precedence
// (after the flags).
const (
	envConnectionString      = "TABLELOG_CONNECTION_STRING"
	envAzureConnectionString = "AZURE_STORAGE_CONNECTION_STRING"
)

// The local emulator's well-known account (internal/account owns it).
const (
	emulatorKey              = account.EmulatorKey
	emulatorURL              = account.EmulatorURL
	emulatorConnectionString = account.EmulatorConnectionString
)

// connFlags are the connection flags every subcommand takes.
type connFlags struct {
	connectionString string
	accountURL       string
	sas              string
	logsTable        string
	auditTable       string
}

// register adds the connection flags to fs.
func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.connectionString, "connection-string", "", "storage connection string (default $"+envConnectionString+", then $"+envAzureConnectionString+")")
	fs.StringVar(&c.accountURL, "account-url", "", "table service URL, e.g. https://ACCOUNT.table.core.windows.net, signed in with Microsoft Entra ID (DefaultAzureCredential)")
	fs.StringVar(&c.sas, "sas", "", "a SAS token (with --account-url) or a SAS URL of the table service")
	fs.StringVar(&c.logsTable, "logs-table", "logs", "name of the logs table")
	fs.StringVar(&c.auditTable, "audit-table", "audit", "name of the audit table")
}

// Kinds of endpoint.
const (
	kindConnectionString = "connection string"
	kindSAS              = "SAS"
	kindEntra            = "Microsoft Entra ID"
	kindEmulator         = "emulator"
)

// endpoint is a resolved connection: how to build the service client.
type endpoint struct {
	kind   string // one of the kind* constants
	source string // what chose it: a flag or environment variable name, or "default"
	// connectionString is set for kindConnectionString and kindEmulator.
	connectionString string
	// serviceURL is the table service URL for kindSAS (with the token as
	// its query) and kindEntra.
	serviceURL string
	// secrets are the values to redact from every message.
	secrets []string
}

// resolveEndpoint chooses the connection. The flags come first: at most one
// of --connection-string, --sas (a SAS URL, or a token with --account-url)
// and --account-url (Entra ID). Without flags, TABLELOG_CONNECTION_STRING,
// then AZURE_STORAGE_CONNECTION_STRING; without those, the local emulator.
// The error is a usage error message.
func resolveEndpoint(c connFlags, env func(string) string) (endpoint, error) {
	cs := strings.TrimSpace(c.connectionString)
	acct := strings.TrimSpace(c.accountURL)
	sas := strings.TrimSpace(c.sas)
	switch {
	case cs != "":
		if acct != "" || sas != "" {
			return endpoint{}, errors.New("--connection-string cannot be combined with --account-url or --sas")
		}
		return connStringEndpoint(cs, "--connection-string")
	case sas != "":
		return sasEndpoint(sas, acct)
	case acct != "":
		u, err := checkServiceURL(acct, "--account-url")
		if err != nil {
			return endpoint{}, err
		}
		if u.RawQuery != "" {
			return endpoint{}, errors.New("--account-url has a query string; pass a SAS with --sas")
		}
		return endpoint{kind: kindEntra, source: "--account-url", serviceURL: strings.TrimSuffix(u.String(), "/")}, nil
	}
	for _, name := range []string{envConnectionString, envAzureConnectionString} {
		if v := strings.TrimSpace(env(name)); v != "" {
			return connStringEndpoint(v, name)
		}
	}
	return endpoint{kind: kindEmulator, source: "default", connectionString: emulatorConnectionString}, nil
}

// connStringEndpoint checks a connection string; UseDevelopmentStorage=true
// means the emulator. A SAS connection string (SharedAccessSignature=, no
// AccountKey=) is handled here rather than by the SDK, which ignores its
// TableEndpoint and requires an AccountName the portal leaves out. Errors
// never quote the string.
func connStringEndpoint(cs, source string) (endpoint, error) {
	if strings.EqualFold(strings.TrimSuffix(strings.ReplaceAll(cs, " ", ""), ";"), "UseDevelopmentStorage=true") {
		return endpoint{kind: kindEmulator, source: source, connectionString: emulatorConnectionString}, nil
	}
	bad := fmt.Errorf("%s is not a valid storage connection string (expected AccountName=...;AccountKey=... or TableEndpoint=...;SharedAccessSignature=...)", source)
	ep := endpoint{kind: kindConnectionString, source: source, connectionString: cs, secrets: connStringSecrets(cs)}
	kv := map[string]string{}
	for _, part := range strings.Split(cs, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	if sas := kv["sharedaccesssignature"]; sas != "" && kv["accountkey"] == "" {
		base := kv["tableendpoint"]
		if base == "" {
			if kv["accountname"] == "" {
				return ep, bad
			}
			proto, suffix := cmp.Or(kv["defaultendpointsprotocol"], "https"), cmp.Or(kv["endpointsuffix"], "core.windows.net")
			base = proto + "://" + kv["accountname"] + ".table." + suffix
		}
		u, err := checkServiceURL(base, source+" TableEndpoint")
		if err != nil || u.RawQuery != "" {
			return ep, bad
		}
		ep.kind, ep.connectionString = kindSAS, ""
		ep.serviceURL = strings.TrimSuffix(u.String(), "/") + "/?" + strings.TrimPrefix(sas, "?")
		return ep, nil
	}
	if _, err := tablelog.NewClientFromConnectionString(cs, "probe", nil); err != nil {
		return ep, bad
	}
	return ep, nil
}

// connStringSecrets returns the secret values of a connection string: the
// account key, the SAS and its signature.
func connStringSecrets(cs string) []string {
	var out []string
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "accountkey":
			out = append(out, strings.TrimSpace(v))
		case "sharedaccesssignature":
			out = append(out, sasSecrets(strings.TrimSpace(v))...)
		}
	}
	return out
}

// sasSecrets returns a SAS token and its signature (raw and decoded).
func sasSecrets(token string) []string {
	token = strings.TrimPrefix(token, "?")
	out := []string{token}
	if q, err := url.ParseQuery(token); err == nil {
		if sig := q.Get("sig"); sig != "" {
			out = append(out, sig)
		}
	}
	for _, p := range strings.Split(token, "&") {
		if v, ok := strings.CutPrefix(p, "sig="); ok && v != "" {
			out = append(out, v)
		}
	}
	return out
}

// sasEndpoint builds the endpoint of --sas: a SAS URL on its own, or a
// token with --account-url.
func sasEndpoint(sas, acct string) (endpoint, error) {
	if strings.HasPrefix(sas, "http://") || strings.HasPrefix(sas, "https://") {
		if acct != "" {
			return endpoint{}, errors.New("--sas is a SAS URL; it cannot be combined with --account-url (pass the token alone, or drop --account-url)")
		}
		u, err := checkServiceURL(sas, "--sas")
		if err != nil {
			return endpoint{}, err
		}
		token := u.RawQuery
		if !strings.Contains(token, "sig=") {
			return endpoint{}, errors.New("--sas URL has no signature (sig=) in its query string")
		}
		u.RawQuery = ""
		return endpoint{kind: kindSAS, source: "--sas", serviceURL: strings.TrimSuffix(u.String(), "/") + "/?" + token, secrets: sasSecrets(token)}, nil
	}
	token := strings.TrimPrefix(sas, "?")
	if !strings.Contains(token, "sig=") {
		return endpoint{}, errors.New("--sas is neither a SAS URL nor a SAS token (no sig= in it)")
	}
	if acct == "" {
		return endpoint{secrets: sasSecrets(token)}, errors.New("--sas with a SAS token needs --account-url (or pass a SAS URL)")
	}
	u, err := checkServiceURL(acct, "--account-url")
	if err != nil {
		return endpoint{secrets: sasSecrets(token)}, err
	}
	if u.RawQuery != "" {
		return endpoint{secrets: sasSecrets(token)}, errors.New("--account-url has a query string; pass the SAS with --sas only")
	}
	return endpoint{kind: kindSAS, source: "--sas", serviceURL: strings.TrimSuffix(u.String(), "/") + "/?" + token, secrets: sasSecrets(token)}, nil
}

// checkServiceURL parses an http(s) URL given by flag name. Errors do not
// quote the URL's query string.
func checkServiceURL(raw, name string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%s is not an http(s) URL of a table service (https://ACCOUNT.table.core.windows.net)", name)
	}
	u.Fragment = ""
	return u, nil
}

// tableNameRE is Azure's rule for table names.
var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{2,62}$`)

// checkTableName validates a table name flag.
func checkTableName(flagName, name string) error {
	if !tableNameRE.MatchString(name) {
		return fmt.Errorf("--%s %q is not a valid table name (3-63 letters and digits, starting with a letter)", flagName, name)
	}
	return nil
}

// clientOptions are the client options of the CLI: a few quick read
// retries, so a wrong endpoint fails within seconds (writes — prune's
// deletes — retry in prune itself).
func clientOptions() *tablelog.ClientOptions {
	return &tablelog.ClientOptions{ClientOptions: policy.ClientOptions{
		Retry: policy.RetryOptions{
			MaxRetries:    3,
			RetryDelay:    200 * time.Millisecond,
			MaxRetryDelay: 2 * time.Second,
			TryTimeout:    time.Minute,
		},
		Telemetry: policy.TelemetryOptions{ApplicationID: "tablelog-cli"},
	}}
}

// newTableClient builds the client of table name at ep.
func newTableClient(ep endpoint, name string) (*tablelog.Client, error) {
	switch ep.kind {
	case kindConnectionString, kindEmulator:
		c, err := tablelog.NewClientFromConnectionString(ep.connectionString, name, clientOptions())
		if err != nil {
			return nil, fmt.Errorf("%s is not a valid storage connection string", ep.source)
		}
		return c, nil
	case kindSAS:
		base, token, _ := strings.Cut(ep.serviceURL, "?")
		c, err := tablelog.NewClientWithNoCredential(strings.TrimSuffix(base, "/")+"/"+name+"?"+token, clientOptions())
		if err != nil {
			return nil, fmt.Errorf("%s: %s", ep.source, azure.RedactWith(err.Error(), "<redacted>"))
		}
		return c, nil
	case kindEntra:
		cred, err := azidentity.NewDefaultAzureCredential(nil)
		if err != nil {
			return nil, fmt.Errorf("signing in with Microsoft Entra ID: %w", err)
		}
		return tablelog.NewClient(ep.serviceURL+"/"+name, cred, clientOptions())
	}
	return nil, fmt.Errorf("no connection configured")
}

// tables are the clients a command works with.
type tables struct {
	ep    endpoint
	logs  *tablelog.Client
	audit *tablelog.Client
}

// connect resolves the connection flags of command cmd and returns the
// clients. It prints the emulator notice on stderr, and registers the
// secrets for redaction.
func (a *app) connect(cmd string, c connFlags) (*tables, error) {
	if err := checkTableName("logs-table", c.logsTable); err != nil {
		return nil, usagef(cmd, "%v", err)
	}
	if err := checkTableName("audit-table", c.auditTable); err != nil {
		return nil, usagef(cmd, "%v", err)
	}
	ep, err := resolveEndpoint(c, a.env)
	a.secrets = append(a.secrets, ep.secrets...)
	if err != nil {
		return nil, usagef(cmd, "%v", err)
	}
	a.emulator = ep.kind == kindEmulator
	if ep.kind == kindEmulator && ep.source == "default" {
		fmt.Fprintf(a.stderr, "tablelog: no connection configured (--connection-string, --account-url, --sas or $%s); using the local emulator at %s\n", envConnectionString, emulatorURL)
	}
	logs, err := newTableClient(ep, c.logsTable)
	if err != nil {
		return nil, err
	}
	audit, err := newTableClient(ep, c.auditTable)
	if err != nil {
		return nil, err
	}
	return &tables{ep: ep, logs: logs, audit: audit}, nil
}

// redactText removes secrets from s: anything that looks like an account
// key, a SAS, a signature or an authorization header value, and every
// known secret value (raw and URL-escaped).
func redactText(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) < 6 {
			continue
		}
		for _, form := range []string{sec, url.QueryEscape(sec), url.PathEscape(sec)} {
			s = strings.ReplaceAll(s, form, "<redacted>")
		}
	}
	return azure.RedactWith(s, "<redacted>")
}

// redact removes secrets from a message before it is printed.
func (a *app) redact(s string) string {
	return redactText(s, append(a.secrets, emulatorKey))
}

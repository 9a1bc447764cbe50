package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog/internal/azurite"
)

const (
	testKey = "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQtbWUtZXZlci0xMjM0NTY3ODkwYWJjZGVm" // base64, like a real key
	testCS  = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + testKey + ";EndpointSuffix=core.windows.net"
	testSig = "Zm9vYmFyc2lnbmF0dXJlKzEyMzQ1Ng%3D%3D"
	testSAS = "sv=2019-02-02&ss=t&srt=o&sp=rl&se=2099-01-01T00%3A00%3A00Z&sig=" + testSig
	testCS2 = "TableEndpoint=https://acct2.table.core.windows.net/;SharedAccessSignature=" + testSAS
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestResolveEndpointPrecedence(t *testing.T) {
	tests := []struct {
		name       string
		flags      connFlags
		env        map[string]string
		wantKind   string
		wantSource string
		wantURL    string
		wantErr    string
	}{
		{name: "nothing: emulator", wantKind: kindEmulator, wantSource: "default"},
		{name: "TABLELOG env", env: map[string]string{envConnectionString: testCS}, wantKind: kindConnectionString, wantSource: envConnectionString},
		{name: "AZURE env", env: map[string]string{envAzureConnectionString: testCS}, wantKind: kindConnectionString, wantSource: envAzureConnectionString},
		{name: "TABLELOG env before AZURE env", env: map[string]string{envConnectionString: testCS2, envAzureConnectionString: testCS}, wantKind: kindSAS, wantSource: envConnectionString},
		{name: "flag before env", flags: connFlags{connectionString: testCS}, env: map[string]string{envConnectionString: testCS2}, wantKind: kindConnectionString, wantSource: "--connection-string"},
		{name: "account URL before env", flags: connFlags{accountURL: "https://acct.table.core.windows.net/"}, env: map[string]string{envConnectionString: testCS}, wantKind: kindEntra, wantSource: "--account-url", wantURL: "https://acct.table.core.windows.net"},
		{name: "SAS URL", flags: connFlags{sas: "https://acct.table.core.windows.net/?" + testSAS}, wantKind: kindSAS, wantSource: "--sas", wantURL: "https://acct.table.core.windows.net/?" + testSAS},
		{name: "SAS token with account URL", flags: connFlags{sas: "?" + testSAS, accountURL: "http://127.0.0.1:10002/devstoreaccount1"}, wantKind: kindSAS, wantSource: "--sas", wantURL: "http://127.0.0.1:10002/devstoreaccount1/?" + testSAS},
		{name: "SAS before env", flags: connFlags{sas: "https://acct.table.core.windows.net?" + testSAS}, env: map[string]string{envConnectionString: testCS}, wantKind: kindSAS, wantSource: "--sas", wantURL: "https://acct.table.core.windows.net/?" + testSAS},
		{name: "SAS connection string", flags: connFlags{connectionString: testCS2}, wantKind: kindSAS, wantSource: "--connection-string", wantURL: "https://acct2.table.core.windows.net/?" + testSAS},
		{name: "SAS connection string without endpoint", flags: connFlags{connectionString: "AccountName=acct3;SharedAccessSignature=" + testSAS}, wantKind: kindSAS, wantSource: "--connection-string", wantURL: "https://acct3.table.core.windows.net/?" + testSAS},
		{name: "SAS connection string, neither", flags: connFlags{connectionString: "SharedAccessSignature=" + testSAS}, wantErr: "not a valid storage connection string"},
		{name: "UseDevelopmentStorage", env: map[string]string{envConnectionString: "UseDevelopmentStorage=true"}, wantKind: kindEmulator, wantSource: envConnectionString},
		{name: "blank env ignored", env: map[string]string{envConnectionString: "  ", envAzureConnectionString: testCS}, wantKind: kindConnectionString, wantSource: envAzureConnectionString},

		{name: "cs and sas", flags: connFlags{connectionString: testCS, sas: testSAS}, wantErr: "cannot be combined"},
		{name: "cs and account", flags: connFlags{connectionString: testCS, accountURL: "https://a.table.core.windows.net"}, wantErr: "cannot be combined"},
		{name: "token without URL", flags: connFlags{sas: testSAS}, wantErr: "needs --account-url"},
		{name: "SAS URL and account", flags: connFlags{sas: "https://acct.table.core.windows.net/?" + testSAS, accountURL: "https://acct.table.core.windows.net"}, wantErr: "cannot be combined"},
		{name: "SAS without sig", flags: connFlags{sas: "sv=2019&sp=r", accountURL: "https://a.table.core.windows.net"}, wantErr: "no sig="},
		{name: "bad account URL", flags: connFlags{accountURL: "acct.table.core.windows.net"}, wantErr: "not an http(s) URL"},
		{name: "account URL with query", flags: connFlags{accountURL: "https://a.table.core.windows.net/?" + testSAS}, wantErr: "has a query string"},
		{name: "bad connection string", flags: connFlags{connectionString: "AccountKey=" + testKey}, wantErr: "not a valid storage connection string"},
		{name: "bad env connection string", env: map[string]string{envConnectionString: "garbage;AccountKey=" + testKey}, wantErr: envConnectionString + " is not a valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := resolveEndpoint(tt.flags, envMap(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				for _, secret := range []string{testKey, testSig, testSAS} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error quotes a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.kind != tt.wantKind || ep.source != tt.wantSource {
				t.Errorf("got %s from %s, want %s from %s", ep.kind, ep.source, tt.wantKind, tt.wantSource)
			}
			if tt.wantURL != "" && ep.serviceURL != tt.wantURL {
				t.Errorf("service URL %q, want %q", ep.serviceURL, tt.wantURL)
			}
			if _, err := newTableClient(ep, "logs"); err != nil {
				t.Errorf("newTableClient: %v", err)
			}
		})
	}
}

func TestRedactText(t *testing.T) {
	secrets := append(connStringSecrets(testCS), connStringSecrets(testCS2)...)
	tests := []string{
		"connection string " + testCS + " rejected",
		"GET https://acct.table.core.windows.net/logs()?$filter=x&" + testSAS + " failed",
		"request https://h/t?sig=abc%2Bdef&sv=1: EOF",
		"Authorization: SharedKey acct:" + testKey,
		"Authorization: SharedKeyLite acct:abcdefSIGNATURE",
		"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
		"ACCOUNTKEY = " + testKey,
		"sharedaccesssignature=" + testSAS,
		"the key is " + testKey + " and escaped " + strings.ReplaceAll(testKey, "=", "%3D"),
		`{"sig":"x","url":"https://h/?sv=1&sig=Zm9v%2F"}`,
	}
	for _, in := range tests {
		out := redactText(in, secrets)
		for _, secret := range []string{testKey, testSig, "abc%2Bdef", "abcdefSIGNATURE", "eyJhbGciOiJIUzI1NiJ9", "Zm9v%2F"} {
			if strings.Contains(out, secret) {
				t.Errorf("redactText(%q) = %q still has %q", in, out, secret)
			}
		}
		if !strings.Contains(out, "<redacted>") {
			t.Errorf("redactText(%q) = %q: nothing redacted", in, out)
		}
		if again := redactText(out, secrets); again != out {
			t.Errorf("redaction is not idempotent: %q then %q", out, again)
		}
	}
	// Ordinary text is left alone.
	for _, in := range []string{"table not found (HTTP 404 TableNotFound)", "signature= is fine", "design=1"} {
		if out := redactText(in, secrets); out != in {
			t.Errorf("redactText(%q) = %q", in, out)
		}
	}
}

// TestErrorsRedacted runs commands whose errors could carry secrets and
// checks that none reaches stdout or stderr.
func TestErrorsRedacted(t *testing.T) {
	cases := [][]string{
		{"tail", "-s", "x", "--connection-string", "Foo=bar;AccountKey=" + testKey},
		{"tail", "-s", "x", "--sas", testSAS},
		{"tail", "-s", "x", "--sas", "https://acct.table.core.windows.net/?" + testSAS, "--account-url", "https://acct.table.core.windows.net"},
		{"tail", "-s", "x", "--connection-string", testCS, "--sas", testSAS},
		{"tail", "-s", "bad service", "--connection-string", testCS},
		{"query", "--where", "a=" + testKey + " b", "--connection-string", testCS},
		{"services", "--connection-string", testCS, "--bogus", testKey},
		{"prune", "--before", testKey, "--connection-string", testCS},
	}
	for _, args := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, nil, &stdout, &stderr, envMap(nil))
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args[0], code, exitUsage, stderr.String())
		}
		all := stdout.String() + stderr.String()
		for _, secret := range []string{testKey, testSig} {
			if strings.Contains(all, secret) {
				t.Errorf("%v printed a secret:\n%s", args[0], all)
			}
		}
	}
}

// TestExitRedactsErrors: an error of a command is printed without the
// secrets the app knows and without secret-looking text.
func TestExitRedactsErrors(t *testing.T) {
	var stderr bytes.Buffer
	a := newApp(nil, &bytes.Buffer{}, &stderr, nil)
	a.secrets = connStringSecrets(testCS2)
	code := a.exit("tail", fmt.Errorf("GET https://acct2.table.core.windows.net/logs?%s: %w", testSAS, errors.New("connection reset; AccountKey="+testKey)))
	if code != exitFail {
		t.Errorf("exit %d", code)
	}
	if s := stderr.String(); strings.Contains(s, testSig) || strings.Contains(s, testKey) || !strings.Contains(s, "<redacted>") {
		t.Errorf("stderr: %s", s)
	}
}

func TestCheckTableName(t *testing.T) {
	for _, ok := range []string{"logs", "audit", "Logs2025", "abc"} {
		if err := checkTableName("logs-table", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ab", "1logs", "logs-table", "logs/../x", "logs?sig=1", strings.Repeat("a", 64)} {
		if err := checkTableName("logs-table", bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func init() {
	e2eTests["connection_sas_and_bad_key"] = testConnections
}

// accountSAS signs an account SAS for the emulator's account.
func accountSAS(t *testing.T, perms aztables.AccountSASPermissions) string {
	t.Helper()
	cred, err := aztables.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := aztables.AccountSASSignatureValues{
		Protocol:      aztables.SASProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Hour).UTC(),
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   perms.String(),
		Services:      "t",
		ResourceTypes: aztables.AccountSASResourceTypes{Object: true, Service: true, Container: true}.String(),
	}.Sign(cred)
	if err != nil {
		t.Fatal(err)
	}
	return qp.Encode()
}

// testConnections reads through a SAS (token + --account-url, SAS URL, SAS
// connection string) and checks that refused credentials fail with a clear
// message and no secret.
func testConnections(t *testing.T, bin string) {
	env := azurite.Get(t)
	if env.Real {
		t.Skip("needs the emulator's account key")
	}
	tbl := env.NewTable(t)
	seedGolden(t, tbl)
	c := newCLI(t, bin, tbl, nil)
	want := c.mustRun(0, "query", "--limit", "0", "-o", "json").stdout
	if strings.Count(want, "\n") != 8 {
		t.Fatalf("baseline: %q", want)
	}
	c.cs = ""
	serviceURL := env.Proxy.ServiceURL
	read := accountSAS(t, aztables.AccountSASPermissions{Read: true, List: true})
	for _, args := range [][]string{
		{"--sas", read, "--account-url", serviceURL},
		{"--sas", "?" + read, "--account-url", serviceURL + "/"},
		{"--sas", serviceURL + "?" + read},
		{"--connection-string", "TableEndpoint=" + serviceURL + ";SharedAccessSignature=" + read},
	} {
		r := c.mustRun(0, append([]string{"query", "--limit", "0", "-o", "json"}, args...)...)
		if r.stdout != want || r.stderr != "" {
			t.Errorf("%v: stdout %d bytes, stderr %q", args[:2], len(r.stdout), r.stderr)
		}
	}
	sig := regexp.MustCompile(`sig=([^&]+)`).FindStringSubmatch(read)[1]

	// An add-only SAS cannot read: exit 1, a clear message, no signature.
	addOnly := accountSAS(t, aztables.AccountSASPermissions{Add: true})
	addSig := regexp.MustCompile(`sig=([^&]+)`).FindStringSubmatch(addOnly)[1]
	r := c.mustRun(1, "query", "-s", "checkout", "--sas", serviceURL+"?"+addOnly)
	if !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("add-only SAS: %s", r.stderr)
	}
	// A read SAS cannot prune.
	r = c.mustRun(1, "prune", "--before", "2025-11-26", "--yes", "--sas", serviceURL+"?"+read)
	if !strings.Contains(r.stderr, "HTTP 403") {
		t.Errorf("prune with a read SAS: %s", r.stderr)
	}
	// A wrong account key: exit 1, no key in the output.
	wrongKey := "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nIQ=="
	bad := "DefaultEndpointsProtocol=http;AccountName=" + azurite.AccountName + ";AccountKey=" + wrongKey + ";TableEndpoint=" + serviceURL + ";"
	r = c.mustRun(1, "tail", "-s", "checkout", "--connection-string", bad)
	if !strings.Contains(r.stderr, "not authorized") {
		t.Errorf("wrong key: %s", r.stderr)
	}
	c.extra[envConnectionString] = bad
	r2 := c.mustRun(1, "services")
	for _, out := range []string{r.stdout + r.stderr, r2.stdout + r2.stderr} {
		for _, secret := range []string{wrongKey, sig, addSig, azurite.AccountKey} {
			if secret != "" && strings.Contains(out, secret) {
				t.Errorf("output has a secret:\n%s", out)
			}
		}
	}
	delete(c.extra, envConnectionString)
	// Nothing configured and no emulator on the default port: the notice,
	// then a hint (the default port is free in CI; skip if not).
	if ln, err := net.Listen("tcp", "127.0.0.1:10002"); err == nil {
		ln.Close()
		r = c.mustRun(1, "services")
		if !strings.HasPrefix(r.stderr, "tablelog: no connection configured") || !strings.Contains(r.stderr, "is the emulator running?") {
			t.Errorf("no emulator: %s", r.stderr)
		}
	}
}

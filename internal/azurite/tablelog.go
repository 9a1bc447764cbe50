package azurite

import (
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog"
)

// ClientOptions are the harness's options for tablelog clients: the same
// fast read retries as its aztables clients (writes are never retried by a
// tablelog.Client).
func ClientOptions() *tablelog.ClientOptions {
	return &tablelog.ClientOptions{ClientOptions: policy.ClientOptions{Retry: policy.RetryOptions{
		MaxRetries:    3,
		RetryDelay:    10 * time.Millisecond,
		MaxRetryDelay: 5 * time.Second,
	}}}
}

// Tablelog returns a tablelog.Client for the same table, endpoint and
// credential as c, which this package made (NewTable, Table, DirectTable,
// AddOnlyTable, a Proxy's or Server's Table ...). It fails the test for
// other clients. Safe for concurrent use.
func Tablelog(t testing.TB, c *aztables.Client) *tablelog.Client {
	t.Helper()
	tc, ok := TryTablelog(t, c)
	if !ok {
		t.Fatalf("azurite: Tablelog: the client was not made by the harness with default options")
	}
	return tc
}

// TryTablelog is Tablelog, reporting false (instead of failing the test)
// for a client it cannot twin: one not made by the harness, or made with
// custom options.
func TryTablelog(t testing.TB, c *aztables.Client) (*tablelog.Client, bool) {
	t.Helper()
	v, _ := names.Load(c)
	info, _ := v.(clientInfo)
	var (
		tc  *tablelog.Client
		err error
	)
	opts := ClientOptions()
	if info.options != nil {
		opts = &tablelog.ClientOptions{ClientOptions: *info.options}
	}
	switch {
	case info.cs != "":
		tc, err = tablelog.NewClientFromConnectionString(info.cs, info.name, opts)
	case info.sasURL != "":
		base, sas, _ := strings.Cut(info.sasURL, "?")
		tc, err = tablelog.NewClientWithNoCredential(strings.TrimSuffix(base, "/")+"/"+info.name+"?"+sas, ClientOptions())
	default:
		return nil, false
	}
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	return tc, true
}

// ServiceURL returns the table service URL through the shared proxy (the
// account's endpoint against a real account), without a trailing slash.
func (e *Env) ServiceURL() string {
	if e.Proxy != nil && !e.Proxy.real {
		return strings.TrimSuffix(e.Proxy.ServiceURL, "/")
	}
	return strings.TrimSuffix(e.upstream, "/")
}

// SharedKey returns a shared key credential for the account. It fails the
// test if the key is unknown (a real account given by a SAS).
func (e *Env) SharedKey(t testing.TB) *aztables.SharedKeyCredential {
	t.Helper()
	if e.key == "" {
		t.Fatalf("azurite: no account key; %s has none", EnvConnectionString)
	}
	cred, err := aztables.NewSharedKeyCredential(e.account, e.key)
	if err != nil {
		t.Fatalf("azurite: %v", err)
	}
	return cred
}

// AccountSAS returns an account SAS token (no leading '?') for the table
// service with the given permissions and resource types, valid for a day,
// for use against serviceURL. It fails the test if the key is unknown.
func (e *Env) AccountSAS(t testing.TB, serviceURL string, perms aztables.AccountSASPermissions, types aztables.AccountSASResourceTypes) string {
	t.Helper()
	proto := aztables.SASProtocolHTTPS
	if strings.HasPrefix(serviceURL, "http:") {
		proto = aztables.SASProtocolHTTPSandHTTP
	}
	qp, err := aztables.AccountSASSignatureValues{
		Protocol:      proto,
		StartTime:     time.Now().Add(-time.Hour).UTC(),
		ExpiryTime:    time.Now().Add(24 * time.Hour).UTC(),
		Permissions:   perms.String(),
		Services:      "t",
		ResourceTypes: types.String(),
	}.Sign(e.SharedKey(t))
	if err != nil {
		t.Fatalf("azurite: signing account SAS: %v", err)
	}
	return qp.Encode()
}

package tablelog

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// fakeCred is an azcore.TokenCredential that records the scopes asked for.
type fakeCred struct {
	mu     sync.Mutex
	scopes [][]string
}

func (f *fakeCred) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	f.mu.Lock()
	f.scopes = append(f.scopes, o.Scopes)
	f.mu.Unlock()
	return azcore.AccessToken{Token: "fake-token-123", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestBearerTokenAuth(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer fake-token-123" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/$batch"):
			w.Header().Set("Content-Type", "multipart/mixed; boundary=batchresponse_x")
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte("--batchresponse_x\r\nContent-Type: multipart/mixed; boundary=changesetresponse_y\r\n\r\n--changesetresponse_y\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--changesetresponse_y--\r\n--batchresponse_x--\r\n"))
		case strings.HasSuffix(r.URL.Path, "()"):
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"odata.metadata":"x","value":[{"PartitionKey":"p","RowKey":"r"}]}`))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	cred := &fakeCred{}
	c, err := NewClient(srv.URL+"/acct/logs", cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.SubmitTransaction(ctx, []aztables.TransactionAction{{ActionType: aztables.TransactionTypeAdd, Entity: []byte(`{"PartitionKey":"p","RowKey":"r"}`)}}, nil); err != nil {
		t.Fatalf("SubmitTransaction: %v", err)
	}
	page, err := c.NewListEntitiesPager(nil).NextPage(ctx)
	if err != nil || len(page.Entities) != 1 {
		t.Fatalf("query: %v %d", err, len(page.Entities))
	}
	if _, err := c.AddEntity(ctx, []byte(`{"PartitionKey":"p","RowKey":"s"}`), nil); err != nil {
		t.Fatalf("AddEntity: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(auths) != 3 {
		t.Fatalf("requests: %q", auths)
	}
	for _, a := range auths {
		if !strings.HasSuffix(a, " Bearer fake-token-123") {
			t.Fatalf("request without the bearer token: %q", a)
		}
	}
	cred.mu.Lock()
	defer cred.mu.Unlock()
	if len(cred.scopes) == 0 || len(cred.scopes[0]) != 1 || cred.scopes[0][0] != "https://storage.azure.com/.default" {
		t.Fatalf("scopes asked: %q", cred.scopes)
	}
}

func TestBearerTokenNotSentOverPlainHTTPToRemoteHosts(t *testing.T) {
	c, err := NewClient("http://example.invalid/acct/logs", &fakeCred{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AddEntity(context.Background(), []byte(`{}`), nil)
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("bearer over http to a remote host: %v, want a TLS error", err)
	}
}

func TestCosmosScope(t *testing.T) {
	c, err := NewClient("https://acct.table.cosmos.azure.com:443/logs", &fakeCred{}, nil)
	if err != nil || !c.cosmos {
		t.Fatalf("cosmos endpoint: %v %v", err, c != nil && c.cosmos)
	}
}

// TestKeySignerMatchesSDK checks the connection-string signer against the
// aztables SDK's own signing of the same requests.
func TestKeySignerMatchesSDK(t *testing.T) {
	const key = DevelopmentAccountKey
	cred, err := aztables.NewSharedKeyCredential("acct", key)
	if err != nil {
		t.Fatal(err)
	}
	sdk, err := newSDKSigner(cred)
	if err != nil {
		t.Fatal(err)
	}
	own, err := newKeySigner("acct", key)
	if err != nil {
		t.Fatal(err)
	}
	date := "Sun, 06 Dec 2026 03:04:05 GMT"
	for _, u := range []string{
		"http://127.0.0.1:10002/acct/$batch",
		"https://acct.table.core.windows.net/logs()?$filter=PartitionKey%20eq%20%27a%27&$top=5",
		"https://acct.table.core.windows.net/logs(PartitionKey='it''s',RowKey='x%20y')",
		"https://acct.table.core.windows.net/Tables",
		"https://acct.table.core.windows.net/?restype=service&comp=properties",
	} {
		r, _ := http.NewRequest(http.MethodPost, u, nil)
		a, err := sdk.sign(date, r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := own.sign(date, r)
		if a != b || !strings.HasPrefix(a, "SharedKeyLite acct:") {
			t.Fatalf("%s: SDK signs %q, tablelog %q", u, a, b)
		}
	}
}

func TestConnectionStrings(t *testing.T) {
	for _, tc := range []struct{ cs, url string }{
		{"UseDevelopmentStorage=true", "http://127.0.0.1:10002/devstoreaccount1/logs"},
		{"usedevelopmentstorage=true;", "http://127.0.0.1:10002/devstoreaccount1/logs"},
		{DevelopmentConnectionString, "http://127.0.0.1:10002/devstoreaccount1/logs"},
		{"AccountName=acct;AccountKey=" + DevelopmentAccountKey, "https://acct.table.core.windows.net/logs"},
		{"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + DevelopmentAccountKey + ";EndpointSuffix=core.chinacloudapi.cn", "https://acct.table.core.chinacloudapi.cn/logs"},
		{"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + DevelopmentAccountKey + ";TableEndpoint=https://acct.table.cosmos.azure.com:443/;", "https://acct.table.cosmos.azure.com:443/logs"},
		{"TableEndpoint=https://acct.table.core.windows.net/;SharedAccessSignature=sv=2019-02-02&sig=abc", "https://acct.table.core.windows.net/logs"},
		{"AccountName=acct;SharedAccessSignature=?sv=2019-02-02&sig=abc", "https://acct.table.core.windows.net/logs"},
	} {
		c, err := NewClientFromConnectionString(tc.cs, "logs", nil)
		if err != nil {
			t.Errorf("%.40s…: %v", tc.cs, err)
			continue
		}
		if c.URL() != tc.url {
			t.Errorf("%.40s…: URL %s, want %s", tc.cs, c.URL(), tc.url)
		}
	}
	for _, cs := range []string{
		"", "garbage", "AccountName=acct", "AccountKey=c2VjcmV0a2V5c2VjcmV0a2V5",
		"AccountName=acct;AccountKey=not base64 secretvalue!",
		"TableEndpoint=ftp://x;AccountName=a;AccountKey=c2VjcmV0a2V5c2VjcmV0a2V5",
		"TableEndpoint=https://x/;SharedAccessSignature=sv=1&secretvalue",
	} {
		_, err := NewClientFromConnectionString(cs, "logs", nil)
		if err == nil {
			t.Errorf("%q accepted", cs)
			continue
		}
		if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "c2VjcmV0") {
			t.Errorf("error quotes the connection string: %v", err)
		}
	}
	if _, err := NewClientFromConnectionString("UseDevelopmentStorage=true", "bad-name", nil); err == nil {
		t.Error("invalid table name accepted")
	}
}

func TestSplitValue(t *testing.T) {
	body := []byte(`{"odata.metadata":"https://x/$metadata#t","value":[{"a":"}]\"","b":[1,{"c":2}]} , {"PartitionKey":"p"},{}]}`)
	got, err := splitValue(body)
	if err != nil || len(got) != 3 || string(got[0]) != `{"a":"}]\"","b":[1,{"c":2}]}` || string(got[1]) != `{"PartitionKey":"p"}` || string(got[2]) != `{}` {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := splitValue([]byte(`{"value":[]}`)); err != nil || len(got) != 0 {
		t.Fatalf("empty: %q %v", got, err)
	}
	for _, bad := range []string{``, `[]`, `{"value":{}}`, `{"value":[{"a":1}`, `{"x":1}`, `{"value":[{"a":"unterminated}]}`} {
		if _, err := splitValue([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

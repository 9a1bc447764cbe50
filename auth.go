package tablelog

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// Scopes of Microsoft Entra ID tokens: Azure Storage, and the Cosmos DB
// Table API.
const (
	StorageScope = "https://storage.azure.com/.default"
	CosmosScope  = "https://cosmos.azure.com/.default"
)

// NewClient returns a client for the table at tableURL
// (https://ACCOUNT.table.core.windows.net/TABLE) that authorizes requests
// with Microsoft Entra ID bearer tokens from cred (for example azidentity's
// DefaultAzureCredential), scope StorageScope (CosmosScope for a Cosmos DB
// endpoint). Tokens are sent over https only, except to a loopback host
// (an emulator or a test server). options may be nil. The error never
// contains the URL's query string.
func NewClient(tableURL string, cred azcore.TokenCredential, options *ClientOptions) (*Client, error) {
	if cred == nil {
		return nil, errors.New("tablelog: NewClient needs a credential")
	}
	base, table, sas, err := splitTableURL(tableURL)
	if err != nil {
		return nil, err
	}
	if sas != "" {
		return nil, errors.New("tablelog: NewClient: the table URL has a query string; pass a SAS URL to NewClientWithNoCredential")
	}
	scope := StorageScope
	if isCosmos(base) {
		scope = CosmosScope
	}
	u, _ := url.Parse(base)
	auth := runtime.NewBearerTokenPolicy(cred, []string{scope}, &policy.BearerTokenOptions{
		InsecureAllowCredentialWithHTTP: u != nil && u.Scheme == "http" && isLoopback(u.Hostname()),
	})
	return newClientParts(base, table, "", auth, options)
}

// NewClientWithNoCredential returns a client for the table at a URL that
// carries its own authorization: a SAS URL
// (https://ACCOUNT.table.core.windows.net/TABLE?sv=...&sig=...), whose
// query is added to every request. The SAS never appears in errors or in
// azcore's log (its sig parameter is redacted). options may be nil.
func NewClientWithNoCredential(tableURLWithSAS string, options *ClientOptions) (*Client, error) {
	return newClient(tableURLWithSAS, nil, options)
}

// NewClientWithSharedKey returns a client for the table at tableURL that
// signs requests with the account key held by cred (SharedKeyLite, as the
// aztables SDK does). The key is used through the SDK's own signing code;
// it is never copied out of cred, and a key replaced with
// cred.SetAccountKey is used from the next second on. options may be nil.
func NewClientWithSharedKey(tableURL string, cred *aztables.SharedKeyCredential, options *ClientOptions) (*Client, error) {
	if cred == nil {
		return nil, errors.New("tablelog: NewClientWithSharedKey needs a credential")
	}
	base, table, sas, err := splitTableURL(tableURL)
	if err != nil {
		return nil, err
	}
	if sas != "" {
		return nil, errors.New("tablelog: NewClientWithSharedKey: the table URL has a query string; pass a SAS URL to NewClientWithNoCredential")
	}
	s, err := newSDKSigner(cred)
	if err != nil {
		return nil, err
	}
	return newClientParts(base, table, "", &sharedKeyPolicy{sign: s.sign}, options)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sharedKeyPolicy sets x-ms-date and the Authorization header of each
// attempt. Signatures depend only on the date (whole seconds) and the
// canonicalized resource, so they are cached for the current second.
type sharedKeyPolicy struct {
	sign  func(date string, r *http.Request) (string, error)
	mu    sync.Mutex
	date  string
	cache map[string]string // canonical key -> Authorization, for date
}

func (p *sharedKeyPolicy) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	date := time.Now().UTC().Format(http.TimeFormat)
	r.Header["x-ms-date"] = []string{date}
	key := r.Method + " " + r.Header.Get("Content-Type") + " " + r.URL.EscapedPath() + "?" + r.URL.Query().Get("comp")
	p.mu.Lock()
	if p.date != date {
		p.date, p.cache = date, make(map[string]string, 8)
	}
	auth, ok := p.cache[key]
	p.mu.Unlock()
	if !ok {
		var err error
		if auth, err = p.sign(date, r); err != nil {
			return nil, fmt.Errorf("tablelog: signing the request: %w", err)
		}
		p.mu.Lock()
		if p.date == date && len(p.cache) < 256 {
			p.cache[key] = auth
		}
		p.mu.Unlock()
	}
	r.Header["Authorization"] = []string{auth}
	return req.Next()
}

// keySigner signs with an account key it holds (from a connection string):
// SharedKeyLite for the Table service,
// StringToSign = x-ms-date + "\n" + "/" + account + escaped path [+ "?comp=" + comp].
type keySigner struct {
	account string
	key     []byte
}

func newKeySigner(account, key string) (*keySigner, error) {
	k, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(k) == 0 {
		return nil, errors.New("tablelog: the account key is not valid base64")
	}
	return &keySigner{account: account, key: k}, nil
}

func (s *keySigner) sign(date string, r *http.Request) (string, error) {
	var b strings.Builder
	b.WriteString(date)
	b.WriteString("\n/")
	b.WriteString(s.account)
	if p := r.URL.EscapedPath(); p != "" {
		b.WriteString(p)
	} else {
		b.WriteByte('/')
	}
	if comp := r.URL.Query().Get("comp"); comp != "" {
		b.WriteString("?comp=")
		b.WriteString(comp)
	}
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(b.String()))
	return "SharedKeyLite " + s.account + ":" + base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// sdkSigner signs with an *aztables.SharedKeyCredential, whose key is not
// exported: it runs the request's method, URL and signed headers through an
// aztables client of its own, built with the credential, whose transport
// never sends anything but records the Authorization header the SDK's
// shared key policy set. So the signature is exactly the SDK's.
type sdkSigner struct {
	client *aztables.Client
}

type signKey struct{}

// signCall carries one signing request through the oracle pipeline.
type signCall struct {
	target *http.Request
	date   string
	auth   string
}

func newSDKSigner(cred *aztables.SharedKeyCredential) (*sdkSigner, error) {
	rewrite := policyFunc(func(req *policy.Request) (*http.Response, error) {
		call, _ := req.Raw().Context().Value(signKey{}).(*signCall)
		if call == nil {
			return nil, errors.New("tablelog: signing pipeline used without a request")
		}
		r := req.Raw()
		r.Method = call.target.Method
		u := *call.target.URL
		r.URL = &u
		r.Host = u.Host
		for _, h := range []string{"Content-Type", "Content-MD5", "Date"} {
			if v := call.target.Header.Get(h); v != "" {
				r.Header.Set(h, v)
			} else {
				r.Header.Del(h)
			}
		}
		r.Header.Set("x-ms-date", call.date)
		return req.Next()
	})
	capture := transportFunc(func(r *http.Request) (*http.Response, error) {
		call, _ := r.Context().Value(signKey{}).(*signCall)
		if call == nil {
			return nil, errors.New("tablelog: signing pipeline used without a request")
		}
		call.auth = r.Header.Get("Authorization")
		return &http.Response{StatusCode: http.StatusNoContent, Status: "204 No Content", Header: http.Header{}, Body: http.NoBody, Request: r}, nil
	})
	svc, err := aztables.NewServiceClientWithSharedKey("https://signer.invalid", cred, &aztables.ClientOptions{ClientOptions: policy.ClientOptions{
		Transport:       capture,
		PerCallPolicies: []policy.Policy{rewrite},
		Retry:           policy.RetryOptions{MaxRetries: -1},
		Telemetry:       policy.TelemetryOptions{Disabled: true},
	}})
	if err != nil {
		return nil, fmt.Errorf("tablelog: shared key: %w", err)
	}
	return &sdkSigner{client: svc.NewClient("signer")}, nil
}

func (s *sdkSigner) sign(date string, r *http.Request) (string, error) {
	call := &signCall{target: r, date: date}
	ctx := context.WithValue(context.Background(), signKey{}, call)
	if _, err := s.client.DeleteEntity(ctx, "k", "k", nil); err != nil {
		return "", errors.New("tablelog: the shared key credential could not sign the request")
	}
	if call.auth == "" {
		return "", errors.New("tablelog: the shared key credential set no Authorization header")
	}
	return call.auth, nil
}

type policyFunc func(*policy.Request) (*http.Response, error)

func (f policyFunc) Do(r *policy.Request) (*http.Response, error) { return f(r) }

type transportFunc func(*http.Request) (*http.Response, error)

func (f transportFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

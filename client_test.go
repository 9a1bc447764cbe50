package tablelog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/azurite"
)

func TestMain(m *testing.M) { azurite.Main(m) }

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newTable creates a fresh table through the strict proxy and returns a
// tablelog client for it built from the proxy's connection string.
func newTable(t *testing.T) *tablelog.Client {
	t.Helper()
	env := azurite.Get(t)
	sdk := env.NewTable(t)
	c, err := tablelog.NewClientFromConnectionString(env.ConnectionString, azurite.TableName(sdk), azurite.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func entity(pk, rk string, extra string) []byte {
	return []byte(fmt.Sprintf(`{"PartitionKey":%q,"RowKey":%q,"N@odata.type":"Edm.Int64","N":"7","Msg":"a \"quoted\" line\nwith é"%s}`, pk, rk, extra))
}

func adds(pk string, n int, extra func(i int) string) []aztables.TransactionAction {
	acts := make([]aztables.TransactionAction, n)
	for i := range acts {
		x := ""
		if extra != nil {
			x = extra(i)
		}
		acts[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: entity(pk, fmt.Sprintf("r%03d", i), x)}
	}
	return acts
}

// listAll reads every entity through c's pager with $top=top.
func listAll(t *testing.T, c interface {
	NewListEntitiesPager(*aztables.ListEntitiesOptions) *runtimePager
}, o *aztables.ListEntitiesOptions) [][]byte {
	t.Helper()
	p := c.NewListEntitiesPager(o)
	var out [][]byte
	for p.More() {
		page, err := p.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page.Entities...)
	}
	return out
}

func TestConnectionStringBatchQueryRoundTrip(t *testing.T) {
	c := newTable(t)
	ctx := ctxT(t)
	if _, err := c.CreateTable(ctx, nil); !isStatus(err, 409, "TableAlreadyExists") {
		t.Fatalf("CreateTable on an existing table: %v, want 409 TableAlreadyExists", err)
	}
	if _, err := c.SubmitTransaction(ctx, adds("p1", 100, nil), nil); err != nil {
		t.Fatalf("SubmitTransaction of 100: %v", err)
	}
	top := int32(7)
	f := "PartitionKey eq 'p1'"
	got := listAll(t, c, &aztables.ListEntitiesOptions{Filter: &f, Top: &top})
	if len(got) != 100 {
		t.Fatalf("read %d entities in pages of 7, want 100", len(got))
	}
	// The SDK reads the same entities: compare field by field.
	sdk := azurite.Get(t).DirectTable(t, c.Name())
	want := listAll(t, sdk, &aztables.ListEntitiesOptions{Filter: &f})
	for i := range got {
		a, b := decode(t, got[i]), decode(t, want[i])
		for k, v := range b {
			if fmt.Sprint(a[k]) != fmt.Sprint(v) {
				t.Fatalf("entity %d: %s = %v, the SDK read %v", i, k, a[k], v)
			}
		}
		if a["Msg"] != "a \"quoted\" line\nwith é" {
			t.Fatalf("entity %d: Msg %q", i, a["Msg"])
		}
	}
	g, err := c.GetEntity(ctx, "p1", "r042", nil)
	if err != nil || decode(t, g.Value)["RowKey"] != "r042" || g.ETag == "" {
		t.Fatalf("GetEntity: %v %s %q", err, g.Value, g.ETag)
	}
	if _, err := c.AddEntity(ctx, entity("p1", "r042", ""), nil); !isStatus(err, 409, "EntityAlreadyExists") {
		t.Fatalf("AddEntity of an existing key: %v", err)
	}
	if _, err := c.AddEntity(ctx, entity("p1", "it's/odd?", ""), nil); err == nil {
		t.Fatal("AddEntity with forbidden key characters succeeded")
	}
	if _, err := c.AddEntity(ctx, entity("p1", "it's", ""), nil); err != nil {
		t.Fatalf("AddEntity: %v", err)
	}
	if _, err := c.DeleteEntity(ctx, "p1", "it's", nil); err != nil {
		t.Fatalf("DeleteEntity of a key with a quote: %v", err)
	}
	if _, err := c.GetEntity(ctx, "p1", "it's", nil); !isStatus(err, 404, "") {
		t.Fatalf("GetEntity after delete: %v", err)
	}
	// Deletes in a transaction.
	dels := make([]aztables.TransactionAction, 10)
	for i := range dels {
		dels[i] = aztables.TransactionAction{ActionType: aztables.TransactionTypeDelete, Entity: []byte(fmt.Sprintf(`{"PartitionKey":"p1","RowKey":"r%03d"}`, i))}
	}
	if _, err := c.SubmitTransaction(ctx, dels, nil); err != nil {
		t.Fatalf("delete transaction: %v", err)
	}
	if n := len(listAll(t, c, &aztables.ListEntitiesOptions{Filter: &f})); n != 90 {
		t.Fatalf("%d entities after deleting 10, want 90", n)
	}
}

func TestTransactionReportsTheFailedOperation(t *testing.T) {
	c := newTable(t)
	ctx := ctxT(t)
	if _, err := c.AddEntity(ctx, entity("p", "r037", ""), nil); err != nil {
		t.Fatal(err)
	}
	// Azurite's own answer: operation 37 conflicts.
	_, err := c.SubmitTransaction(ctx, adds("p", 50, nil), nil)
	var te *tablelog.TransactionError
	if !errors.As(err, &te) || te.Index != 37 || te.StatusCode != 409 || te.Code != "EntityAlreadyExists" {
		t.Fatalf("conflict at 37: %#v (%v)", te, err)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 409 || re.ErrorCode != "EntityAlreadyExists" {
		t.Fatalf("errors.As ResponseError: %v", err)
	}
	// The strict proxy's answer (Azure's rule Azurite lacks): a property
	// name that is not an identifier at operation 12.
	_, err = c.SubmitTransaction(ctx, adds("q", 30, func(i int) string {
		if i == 12 {
			return `,"user-id":"x"`
		}
		return ""
	}), nil)
	if !errors.As(err, &te) || te.Index != 12 || te.StatusCode != 400 {
		t.Fatalf("bad property at 12: %#v (%v)", te, err)
	}
	// Nothing of either transaction was stored.
	if n := len(listAll(t, c, nil)); n != 1 {
		t.Fatalf("%d entities stored, want 1", n)
	}
	if _, err := c.SubmitTransaction(ctx, nil, nil); err == nil {
		t.Fatal("empty transaction accepted")
	}
}

func TestSharedKeyCredentialAgainstAzurite(t *testing.T) {
	env := azurite.Get(t)
	name := azurite.TableName(env.NewTable(t))
	c, err := tablelog.NewClientWithSharedKey(env.ServiceURL()+"/"+name, env.SharedKey(t), azurite.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if _, err := c.SubmitTransaction(ctx, adds("p", 20, nil), nil); err != nil {
		t.Fatalf("SubmitTransaction signed with the SDK credential: %v", err)
	}
	if n := len(listAll(t, c, nil)); n != 20 {
		t.Fatalf("read %d, want 20", n)
	}
	// A wrong key is refused (403), and the error names no key.
	bad, _ := aztables.NewSharedKeyCredential(azurite.AccountName, "AAAA"+azurite.AccountKey[4:])
	c2, err := tablelog.NewClientWithSharedKey(env.ServiceURL()+"/"+name, bad, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c2.AddEntity(ctx, entity("p", "x", ""), nil)
	if !isStatus(err, 403, "") {
		t.Fatalf("wrong key: %v, want 403", err)
	}
	if strings.Contains(err.Error(), azurite.AccountKey[8:30]) {
		t.Fatal("error contains the key")
	}
}

func TestSASAgainstAzurite(t *testing.T) {
	env := azurite.Get(t)
	name := azurite.TableName(env.NewTable(t))
	ctx := ctxT(t)
	// Add-only: batches and single inserts work; reading is refused.
	sas := env.AccountSAS(t, env.ServiceURL(), aztables.AccountSASPermissions{Add: true}, aztables.AccountSASResourceTypes{Object: true})
	w, err := tablelog.NewClientWithNoCredential(env.ServiceURL()+"/"+name+"?"+sas, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.SubmitTransaction(ctx, adds("p", 10, nil), nil); err != nil {
		t.Fatalf("add-only SAS batch: %v", err)
	}
	if _, err := w.AddEntity(ctx, entity("p", "single", ""), nil); err != nil {
		t.Fatalf("add-only SAS insert: %v", err)
	}
	_, err = w.NewListEntitiesPager(nil).NextPage(ctx)
	if !isStatus(err, 403, "") {
		t.Fatalf("add-only SAS read: %v, want 403", err)
	}
	sig := sasSig(sas)
	if strings.Contains(err.Error(), sig) || strings.Contains(fmt.Sprintf("%+v", err), sig) {
		t.Fatal("the error contains the SAS signature")
	}
	// Read SAS through a connection string.
	rsas := env.AccountSAS(t, env.ServiceURL(), aztables.AccountSASPermissions{Read: true, List: true}, aztables.AccountSASResourceTypes{Object: true, Container: true})
	r, err := tablelog.NewClientFromConnectionString("TableEndpoint="+env.ServiceURL()+";SharedAccessSignature="+rsas, name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(listAll(t, r, nil)); n != 11 {
		t.Fatalf("read %d with a read SAS, want 11", n)
	}
	if _, err := r.AddEntity(ctx, entity("p", "denied", ""), nil); !isStatus(err, 403, "") {
		t.Fatalf("read SAS insert: %v, want 403", err)
	}
}

func TestTransportErrorsKeepTheChainAndDropSecrets(t *testing.T) {
	const sig = "c2VjcmV0LXNpZ25hdHVyZS12YWx1ZQ%3D%3D"
	c, err := tablelog.NewClientWithNoCredential("http://127.0.0.1:1/acct/logs?sv=2019-02-02&ss=t&srt=o&sp=a&se=2099-01-01&sig="+sig, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.AddEntity(context.Background(), entity("p", "r", ""), nil)
	if err == nil {
		t.Fatal("no error from a closed port")
	}
	if strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("error contains the signature: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.SubmitTransaction(ctx, adds("p", 2, nil), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v, want errors.Is context.Canceled", err)
	}
	if strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("error contains the signature: %v", err)
	}
}

func isStatus(err error, status int, code string) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status && (code == "" || re.ErrorCode == code)
}

func sasSig(sas string) string {
	for _, p := range strings.Split(sas, "&") {
		if v, ok := strings.CutPrefix(p, "sig="); ok {
			return v
		}
	}
	return "no-sig"
}

// TestLoggingNeverShowsSecrets turns azcore's logging on and checks that no
// request line, header or error it logs carries the SAS signature or the
// shared key signature.
func TestLoggingNeverShowsSecrets(t *testing.T) {
	env := azurite.Get(t)
	name := azurite.TableName(env.NewTable(t))
	var mu sync.Mutex
	var lines []string
	azlog.SetListener(func(_ azlog.Event, msg string) {
		mu.Lock()
		lines = append(lines, msg)
		mu.Unlock()
	})
	defer azlog.SetListener(nil)
	ctx := ctxT(t)
	sas := env.AccountSAS(t, env.ServiceURL(), aztables.AccountSASPermissions{Add: true}, aztables.AccountSASResourceTypes{Object: true})
	w, err := tablelog.NewClientWithNoCredential(env.ServiceURL()+"/"+name+"?"+sas, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.SubmitTransaction(ctx, adds("p", 3, nil), nil); err != nil {
		t.Fatal(err)
	}
	_, _ = w.NewListEntitiesPager(nil).NextPage(ctx) // 403, logged as an error
	k, err := tablelog.NewClientWithSharedKey(env.ServiceURL()+"/"+name, env.SharedKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddEntity(ctx, entity("p", "k", ""), nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) < 4 {
		t.Fatalf("azcore logged %d lines; the listener is not reached", len(lines))
	}
	sig := sasSig(sas)
	redacted := 0
	for _, l := range lines {
		if strings.Contains(l, sig) || strings.Contains(l, "SharedKeyLite "+azurite.AccountName+":") {
			t.Fatalf("a log line carries a secret: %q", l)
		}
		if strings.Contains(l, "sig=REDACTED") {
			redacted++
		}
	}
	if redacted == 0 {
		t.Fatal("no logged URL shows the SAS's sig parameter redacted: the URLs were not logged")
	}
}

package azurite

import (
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

func TestServerRestart(t *testing.T) {
	t.Parallel()
	needEmulator(t)
	dir := t.TempDir()
	srv := StartServer(t, ServerOptions{Dir: dir})
	c := ctx(t)
	svc, err := aztables.NewServiceClientFromConnectionString(srv.ConnectionString, noRetry)
	if err != nil {
		t.Fatal(err)
	}
	name := NewTableName()
	if _, err := svc.CreateTable(c, name, nil); err != nil {
		t.Fatal(err)
	}
	tbl := srv.Table(t, name)
	if _, err := tbl.AddEntity(c, ent(t, "p", "1", map[string]any{"Msg": "before"}), nil); err != nil {
		t.Fatal(err)
	}
	proxy := srv.NewProxy(t)
	ptbl := proxy.Table(t, name, noRetry)

	start := time.Now()
	srv.Stop()
	t.Logf("graceful stop took %v", time.Since(start))
	_, err = svc.NewClient(name).GetEntity(c, "p", "1", nil)
	var re *azcore.ResponseError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("stopped server answered: %v", err)
	}
	_, err = ptbl.GetEntity(c, "p", "1", nil)
	if re := responseError(t, err); re.StatusCode != 502 {
		t.Fatalf("proxy with the server down: got %v, want 502", err)
	}

	start = time.Now()
	srv.Start()
	t.Logf("restart took %v", time.Since(start))
	if _, err := tbl.GetEntity(c, "p", "1", nil); err != nil {
		t.Fatalf("entity lost across a graceful restart: %v", err)
	}
	if _, err := ptbl.AddEntity(c, ent(t, "p", "2", nil), nil); err != nil {
		t.Fatalf("proxy after restart: %v", err)
	}

	srv.Kill()
	if _, err := svc.NewClient(name).GetEntity(c, "p", "1", nil); err == nil || errors.As(err, &re) {
		t.Fatalf("killed server answered: %v", err)
	}
}

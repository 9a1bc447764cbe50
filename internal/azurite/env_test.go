package azurite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMissingAzuriteInCI(t *testing.T) {
	t.Setenv("CI", "true")
	_, err := findAzuriteIn(t.TempDir())
	if err == nil || err.Error() != installHint {
		t.Fatalf("got %v, want %q", err, installHint)
	}
}

func TestPackageDir(t *testing.T) {
	dir, err := packageDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err != nil {
		t.Fatalf("packageDir() = %s: %v", dir, err)
	}
}

func TestRealEnv(t *testing.T) {
	const key = "c2VjcmV0c2VjcmV0c2VjcmV0"
	env, err := realEnv("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" + key + ";EndpointSuffix=core.windows.net")
	if err != nil {
		t.Fatal(err)
	}
	if !env.Real || env.upstream != "https://acct.table.core.windows.net" || env.Proxy.ConnectionString != env.ConnectionString {
		t.Fatalf("env = %+v", env)
	}
	if s := env.Proxy.Stats(); s.Requests != 0 {
		t.Errorf("Stats() = %+v", s)
	}
	env.Proxy.Reset() // allowed: nothing to reset
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), EnvConnectionString) || strings.Contains(r.(string), key) {
			t.Fatalf("SetFaults on the shared real-account proxy: recovered %v", r)
		}
	}()
	env.Proxy.SetFaults(Faults{StatusRate: 1})
}

func TestRealEnvBadConnectionString(t *testing.T) {
	_, err := realEnv("AccountName=acct;Nonsense")
	if err == nil || strings.Contains(err.Error(), "Nonsense") {
		t.Fatalf("got %v", err)
	}
}

package account

import (
	"strings"
	"testing"
)

func TestConnectionStringPrecedence(t *testing.T) {
	env := map[string]string{}
	get := func(k string) string { return env[k] }
	if cs, emu := ConnectionString(get); !emu || cs != EmulatorConnectionString {
		t.Fatal("no variables: want the emulator")
	}
	env["AZURE_STORAGE_CONNECTION_STRING"] = "b"
	if cs, emu := ConnectionString(get); emu || cs != "b" {
		t.Fatalf("got %q", cs)
	}
	env["TABLELOG_CONNECTION_STRING"] = "a"
	if cs, _ := ConnectionString(get); cs != "a" {
		t.Fatalf("got %q", cs)
	}
}

func TestRedact(t *testing.T) {
	in := "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5;EndpointSuffix=core.windows.net " +
		"SharedAccessSignature=sv=2020&sig=abc%2Fdef https://x/t?sv=1&sig=zzz&sp=a Authorization: SharedKey acct:qq"
	out := Redact(in)
	for _, secret := range []string{"c2VjcmV0a2V5", "abc%2Fdef", "zzz", "acct:qq"} {
		if strings.Contains(out, secret) {
			t.Errorf("secret %q survived: %s", secret, out)
		}
	}
	if !strings.Contains(out, "AccountName=acct") {
		t.Errorf("non-secret parts lost: %s", out)
	}
}

func TestTableBadConnectionStringHidesKey(t *testing.T) {
	_, err := Table("AccountName=a;AccountKey=topsecret;Nonsense", "logs")
	if err != nil && strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("key in error: %v", err)
	}
}

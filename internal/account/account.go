// Package account resolves where tablelog's tables live — a connection
// string, or the local Azurite emulator — and keeps secrets out of text.
// The examples and the CLI call it; nothing else knows the emulator's
// address or key.
package account

import (
	"fmt"
	"regexp"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// The local emulator's well-known development account: Azurite's defaults
// (the key is public, documented and the same on every machine; it only
// works against the emulator, and is still never printed).
const (
	EmulatorAccount = "devstoreaccount1"
	EmulatorKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	EmulatorURL     = "http://127.0.0.1:10002/" + EmulatorAccount // the table service on its default port
)

// EmulatorConnectionString reaches the Azurite table service at EmulatorURL.
const EmulatorConnectionString = "DefaultEndpointsProtocol=http;AccountName=" + EmulatorAccount +
	";AccountKey=" + EmulatorKey + ";TableEndpoint=" + EmulatorURL + ";"

// Env variables read by ConnectionString, in order of precedence.
var Env = []string{"TABLELOG_CONNECTION_STRING", "AZURE_STORAGE_CONNECTION_STRING"}

// ConnectionString returns the first connection string set in Env, or the
// emulator's with emulator true. A nil getenv means no variables are set.
func ConnectionString(getenv func(string) string) (cs string, emulator bool) {
	if getenv != nil {
		for _, k := range Env {
			if v := getenv(k); v != "" {
				return v, false
			}
		}
	}
	return EmulatorConnectionString, true
}

// Table returns a client for the named table of the account cs names. Errors
// never contain the connection string's secrets.
func Table(cs, table string) (*aztables.Client, error) {
	svc, err := aztables.NewServiceClientFromConnectionString(cs, nil)
	if err != nil {
		return nil, fmt.Errorf("connection string: %s", Redact(err.Error()))
	}
	return svc.NewClient(table), nil
}

var (
	secrets = regexp.MustCompile(`(?i)\b(AccountKey|SharedAccessSignature|sig)(=)[^;&\s"']+`)
	authz   = regexp.MustCompile(`(?i)\b(Authorization)(:\s*)[^\r\n"]+`)
)

// Redact replaces the values of account keys, SAS signatures and
// Authorization headers in s with "REDACTED".
func Redact(s string) string {
	s = secrets.ReplaceAllString(s, "${1}${2}REDACTED")
	return authz.ReplaceAllString(s, "${1}${2}REDACTED")
}

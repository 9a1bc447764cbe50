// Package account resolves where tablelog's tables live — a connection
// string, or the local Azurite emulator — and keeps secrets out of text.
// The examples and the CLI call it; nothing else knows the emulator's
// address or key.
package account

import (
	"fmt"

	"github.com/tablelog/tablelog"
	"github.com/tablelog/tablelog/internal/azure"
)

// The local emulator's well-known development account: Azurite's defaults
// (the key is public, documented and the same on every machine; it only
// works against the emulator, and is still never printed). They are
// tablelog's UseDevelopmentStorage=true account.
const (
	EmulatorAccount = tablelog.DevelopmentAccount
	EmulatorKey     = tablelog.DevelopmentAccountKey
	EmulatorURL     = tablelog.DevelopmentServiceURL // the table service on its default port
)

// EmulatorConnectionString reaches the Azurite table service at EmulatorURL.
const EmulatorConnectionString = tablelog.DevelopmentConnectionString

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
func Table(cs, table string) (*tablelog.Client, error) {
	c, err := tablelog.NewClientFromConnectionString(cs, table, nil)
	if err != nil {
		return nil, fmt.Errorf("connection string: %s", Redact(err.Error()))
	}
	return c, nil
}

// Redact replaces the values of account keys, SAS signatures and
// Authorization headers in s with "REDACTED".
func Redact(s string) string { return azure.RedactString(s) }

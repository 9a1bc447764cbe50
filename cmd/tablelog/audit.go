package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
)

// envAuditKey holds the HMAC key of keyed audit trails.
const envAuditKey = "TABLELOG_AUDIT_KEY"

const auditUsage = `
Usage: tablelog audit ls|verify|export [flags]

	ls       list audit events, newest first, by actor/action/target/outcome/time
	verify   check the hash chain of a trail; exit 1 on any break
	export   write events as JSON lines or CSV, oldest first, for reviewers

Examples:

	tablelog audit ls -s billing --actor alice --since 7d
	tablelog audit verify -s billing
	tablelog audit export -s billing --since 2025-11-01 -o csv > billing.csv

Run 'tablelog audit <subcommand> --help' for its flags and more examples.
`

func (a *app) audit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("audit", "a subcommand is required: ls, verify or export")
	}
	switch args[0] {
	case "ls", "list":
		return a.auditLs(ctx, args[1:])
	case "verify":
		return a.auditVerify(ctx, args[1:])
	case "export":
		return a.auditExport(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(a.stdout, strings.TrimLeft(auditUsage, "\n"))
		return flag.ErrHelp
	}
	return usagef("audit", "unknown subcommand %q (ls, verify or export)", args[0])
}

// auditKeyFlags are the key flags of audit verify.
type auditKeyFlags struct {
	keyFile string
}

func (k *auditKeyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.keyFile, "key-file", "", "file holding the HMAC key of a keyed trail (default $"+envAuditKey+")")
}

// load returns the key (nil for none) and registers it for redaction.
func (a *app) loadKey(cmd string, k auditKeyFlags) ([]byte, error) {
	var key []byte
	switch {
	case k.keyFile != "":
		b, err := os.ReadFile(k.keyFile)
		if err != nil {
			return nil, usagef(cmd, "--key-file: %v", err)
		}
		key = []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"))
		if len(key) == 0 {
			return nil, usagef(cmd, "--key-file %s is empty", k.keyFile)
		}
	case a.env(envAuditKey) != "":
		key = []byte(a.env(envAuditKey))
	}
	if len(key) > 0 {
		a.secrets = append(a.secrets, string(key))
	}
	return key, nil
}

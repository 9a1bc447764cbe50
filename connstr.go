package tablelog

import (
	"errors"
	"net/url"
	"strings"
)

// The local emulator's well-known development account, which
// UseDevelopmentStorage=true names: Azurite's defaults. The key is public,
// documented and the same on every machine; it only works against the
// emulator (and is still never printed).
const (
	DevelopmentAccount    = "devstoreaccount1"
	DevelopmentAccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	DevelopmentServiceURL = "http://127.0.0.1:10002/" + DevelopmentAccount
)

// DevelopmentConnectionString is the explicit form of
// UseDevelopmentStorage=true.
const DevelopmentConnectionString = "DefaultEndpointsProtocol=http;AccountName=" + DevelopmentAccount +
	";AccountKey=" + DevelopmentAccountKey + ";TableEndpoint=" + DevelopmentServiceURL + ";"

var errConnStr = errors.New("tablelog: not a valid storage connection string (expected AccountName=...;AccountKey=..., TableEndpoint=...;SharedAccessSignature=..., or UseDevelopmentStorage=true)")

// NewClientFromConnectionString returns a client for table in the account
// a connection string names. Accepted forms (keys are case-insensitive,
// order free, a trailing ';' optional):
//
//   - UseDevelopmentStorage=true: the local emulator (Azurite) at
//     DevelopmentServiceURL with its well-known key;
//   - AccountName=...;AccountKey=...[;DefaultEndpointsProtocol=https][;EndpointSuffix=core.windows.net]:
//     a storage account, signed with the key (SharedKeyLite);
//   - the same with TableEndpoint=URL: an emulator
//     (http://127.0.0.1:10002/devstoreaccount1), a Cosmos DB Table API
//     account (https://ACCOUNT.table.cosmos.azure.com:443/) or any other
//     endpoint;
//   - TableEndpoint=URL;SharedAccessSignature=TOKEN, or
//     AccountName=...;SharedAccessSignature=TOKEN: a SAS, sent with every
//     request.
//
// Errors never quote the connection string. options may be nil.
func NewClientFromConnectionString(connStr, table string, options *ClientOptions) (*Client, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(strings.TrimSpace(connStr), ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, errConnStr
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if strings.EqualFold(kv["usedevelopmentstorage"], "true") {
		kv = map[string]string{"accountname": DevelopmentAccount, "accountkey": DevelopmentAccountKey, "tableendpoint": DevelopmentServiceURL}
	}
	name, key, sas := kv["accountname"], kv["accountkey"], strings.TrimPrefix(kv["sharedaccesssignature"], "?")
	base := kv["tableendpoint"]
	if base == "" {
		if name == "" {
			return nil, errConnStr
		}
		proto, suffix := kv["defaultendpointsprotocol"], kv["endpointsuffix"]
		if proto == "" {
			proto = "https"
		}
		if suffix == "" {
			suffix = "core.windows.net"
		}
		base = proto + "://" + name + ".table." + suffix
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, errConnStr
	}
	base = u.Scheme + "://" + u.Host + strings.TrimSuffix(u.EscapedPath(), "/")
	switch {
	case key != "":
		if name == "" {
			return nil, errConnStr
		}
		s, err := newKeySigner(name, key)
		if err != nil {
			return nil, errConnStr
		}
		return newClientParts(base, table, "", &sharedKeyPolicy{sign: s.sign}, options)
	case sas != "":
		if !strings.Contains(sas, "sig=") {
			return nil, errConnStr
		}
		return newClientParts(base, table, sas, nil, options)
	}
	return nil, errConnStr
}

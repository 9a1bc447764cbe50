package tablelog

import (
	"crypto/tls"
	"net"
	"net/http"
	"time"
)

// writeBufferSize is the write buffer of the default transport's
// connections. net/http copies a request body with a known length through
// the connection's write buffer and, for the part that does not fit, a
// fresh 32 KiB buffer per request; a transaction of 100 typical records
// (about 100 KiB with its framing) fits in this one, so writing it
// allocates nothing and takes one write call.
const writeBufferSize = 128 << 10

// defaultTransport is the transport of every Client whose options name
// none: azcore's default transport settings (proxy from the environment,
// its dial, idle and TLS limits, HTTP/2 when the server offers it, with
// its health-check pings) with a larger write buffer. One shared
// transport lets Clients of one account share connections.
var defaultTransport = &http.Client{Transport: &http.Transport{
	Proxy: http.ProxyFromEnvironment,
	DialContext: (&net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
	}).DialContext,
	ForceAttemptHTTP2:     true,
	MaxIdleConns:          100,
	MaxIdleConnsPerHost:   10,
	IdleConnTimeout:       90 * time.Second,
	TLSHandshakeTimeout:   10 * time.Second,
	ExpectContinueTimeout: 1 * time.Second,
	TLSClientConfig: &tls.Config{
		MinVersion:    tls.VersionTLS12,
		Renegotiation: tls.RenegotiateFreelyAsClient,
	},
	HTTP2: &http.HTTP2Config{
		SendPingTimeout: 10 * time.Second,
		PingTimeout:     5 * time.Second,
	},
	WriteBufferSize: writeBufferSize,
}}

// Package tablelog is the Azure-facing layer of tablelog: a Client for one
// table of Azure Table Storage (or the Cosmos DB Table API, or the Azurite
// emulator) built on azcore's HTTP pipeline. It sends entity bytes exactly
// as tablelog's encoder produced them — an entity-group transaction body is
// assembled from them without decoding or re-encoding — and hands each
// entity of a query page to the caller as the bytes of the response, so a
// logging application pays neither the aztables SDK's per-entity map round
// trip on writes nor its re-marshalling on reads.
//
// A *Client has exactly the methods the sink, auditlog and query packages
// ask of a table, with the aztables types they name, so sink.New,
// auditlog.New and query.New accept it wherever they accept an
// *aztables.Client:
//
//	logs, err := tablelog.NewClientFromConnectionString(connStr, "logs", nil)
//	if err != nil { ... }
//	s, err := sink.New(logs, sink.Options{Service: "checkout"})
//
// Connection strings (account key, SAS, UseDevelopmentStorage=true, Cosmos
// DB Table endpoints), shared keys, SAS URLs and Microsoft Entra ID tokens
// (any azcore.TokenCredential, such as azidentity's) are supported. Secrets
// never appear in an error, a log line of azcore's logging policy, or a
// panic.
package tablelog

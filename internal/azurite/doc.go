// Package azurite is tablelog's integration-test harness: it runs the pinned
// Azurite table emulator (npm, package.json here), puts an Azure-strict proxy
// in front of it, and injects faults on command.
//
// Every integration test package calls Main from TestMain and Get from its
// tests:
//
//	func TestMain(m *testing.M) { azurite.Main(m) }
//
//	func TestX(t *testing.T) {
//		env := azurite.Get(t)
//		tbl := env.NewTable(t) // fresh table through the strict proxy
//		...
//	}
//
// One Azurite (in memory, free loopback port) serves each test binary. With
// TABLELOG_TEST_CONNECTION_STRING set, the tests run against that real
// account instead, with no emulator and no proxy: Env.Proxy and NewProxy
// forward nothing, and their fault knobs (SetFaults, Outage) fail the test
// that uses them rather than skip it; StartServer fails too.
//
// When CI=true a missing Azurite fails the binary with the command that
// installs it; elsewhere Main runs `npm ci` once first.
//
// # The strict proxy
//
// Azurite accepts requests real Azure rejects. The proxy rejects them, with
// Azure's status, error code and OData JSON error body, for single inserts,
// updates, merges and upserts, and inside $batch requests (202 with a
// multipart response whose change-set part carries the failing operation's
// status and error, the message prefixed "<index>:", which the aztables SDK
// returns as an error):
//
//	rule                                      status  code                                     raw Azurite
//	more than 100 operations in a batch        400     InvalidInput (index 0)                   refuses, malformed response
//	several PartitionKeys in a batch           400     CommandsInBatchActOnDifferentPartitions  accepts
//	one RowKey twice in a batch                400     InvalidDuplicateRow                      same
//	batch payload over 4 MiB                   413     RequestBodyTooLarge (not in a 202)       same
//	more than 252 custom properties            400     TooManyProperties                        accepts
//	property name not a C# identifier          400     PropertyNameInvalid                      accepts
//	property name over 255 characters          400     PropertyNameTooLong                      accepts
//	a property given twice (raw JSON only)     400     DuplicatePropertiesSpecified             accepts
//	Edm.DateTime before 1601-01-01             400     OutOfRangeInput                          accepts
//	Edm.String over 32,768 UTF-16 units        400     PropertyValueTooLarge                    same
//	Edm.Binary over 65,536 bytes               400     PropertyValueTooLarge                    same
//	entity over 1 MiB (see EntitySize)         400     EntityTooLarge                           accepts
//
// "Same" rules are enforced by Azurite too; the proxy checks them anyway so
// that ValidateEntity is complete. Error codes and messages follow the Table
// service error-code reference; for DateTime before 1601 Azure's code is
// documented only loosely (OutOfRangeInput is what it answers for
// out-of-range values).
//
// The aztables SDK re-encodes every entity through a map[string]any, so
// duplicate property names never reach the wire through it (the last value
// silently wins); ValidateEntity flags them for code that builds JSON.
//
// ValidateEntity applies the entity rules to one encoded entity, so codec
// tests can assert that everything the encoder produces is accepted.
//
// # Faults
//
// Proxy.SetFaults injects, at seeded rates: status codes with Azure's error
// body, 429 with Retry-After, connection resets before forwarding, responses
// dropped after Azurite committed the write, and latency; Proxy.Outage resets
// every connection for a while. Env.NewProxy gives a test a proxy of its own
// so its faults disturb no other test. Stats counts requests, rejections by
// code and faults by kind.
//
// # Scalability targets
//
// Azurite takes any load; Azure does not. Proxy.SetTargets makes the proxy
// model Azure's scalability targets: token buckets of entities per
// partition (2,000/s) and per account (20,000/s), settable and scalable
// (Targets.Scaled(10): 200/s and 2,000/s) so that tests exceed them. A
// request past either answers 503 ServerBusy with the Table service's
// OData JSON error body and stores nothing; a $batch counts its entities.
// Targets.Latency adds a nearby region's round trip to every request, and
// Targets.Now lets tests refill the buckets with a fake clock instead of
// sleeping. Stats.Throttled counts the 503s by scope.
//
// # Emulator findings (Azurite 3.37.0)
//
// Verified by TestEmulatorFindings:
//
//   - String values may contain NUL and any other control character
//     (U+0000–U+001F, U+007F, U+0085): Azurite stores and returns them
//     unchanged. (Only keys forbid them.)
//   - Edm.Double accepts "NaN", "Infinity" and "-Infinity" (as JSON strings
//     with the Edm.Double annotation) and returns them the same way.
//   - Edm.String is limited to 32,768 UTF-16 code units (JavaScript string
//     length): 32,768 pass, 32,769 fail with 400 PropertyValueTooLarge; a
//     character outside the BMP counts 2, UTF-8 size does not matter.
//   - Azurite bug: for single-entity requests (insert, update, merge,
//     upsert) it decodes the body chunk by chunk, so a multi-byte UTF-8
//     character split across two ~64 KiB stream chunks becomes U+FFFD
//     replacement characters, nondeterministically (data corruption, and
//     sometimes a spurious PropertyValueTooLarge). $batch bodies are decoded
//     correctly. The proxy \u-escapes non-ASCII characters in single-entity
//     bodies over 16 KiB (the same JSON), so writes through the proxy are
//     exact; writes through DirectTable are not.
//   - Azurite does not check Edm values: an Edm.Int64 of "abc" is stored.
//   - Azurite answers a batch of more than 100 operations with a multipart
//     body the SDK cannot parse ("malformed HTTP response"), storing nothing.
package azurite

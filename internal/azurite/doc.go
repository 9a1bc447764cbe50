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
//	rule                                        status  code
//	more than 100 operations in a batch          400     InvalidInput (index 100)
//	several PartitionKeys in a batch             400     CommandsInBatchActOnDifferentPartitions
//	one RowKey twice in a batch                  400     InvalidDuplicateRow
//	batch payload over 4 MiB                     413     RequestBodyTooLarge (not in a 202)
//	more than 252 custom properties              400     TooManyProperties
//	property name not a C# identifier            400     PropertyNameInvalid
//	property name over 255 characters            400     PropertyNameTooLong
//	a property given twice                       400     DuplicatePropertiesSpecified
//	Edm.DateTime before 1601-01-01               400     OutOfRangeInput
//	Edm.String over 32K chars, Edm.Binary over 64 KiB
//	                                             400     PropertyValueTooLarge
//	entity over 1 MiB (see EntitySize)           400     EntityTooLarge
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
// # Emulator findings (Azurite 3.37.0)
//
// FINDINGS
package azurite

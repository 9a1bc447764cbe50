// Package schema is the one place that knows tablelog's table format: keys,
// column names, EDM types, property-name encoding and the service's limits.
// Every other package calls it; none copies it.
//
// # Keys
//
// PartitionKey is "<service>_<yyyyMMdd>" (UTC day), optionally
// "<service>_<yyyyMMdd>_<shard>". RowKey is the 26-character Crockford base32
// text of the bitwise complement of a ULID, so ascending RowKey order is
// newest first and a time range is a RowKey range (RowKeyRange). Keys are
// fixed when a record is encoded: a retried write reuses them and can never
// store a record twice.
//
// # Log entities
//
// System columns: Time (Edm.DateTime), Level, Severity (Edm.Int32, slog's
// scale), Msg, Logger, Caller, Stack. Each field is its own typed column,
// named by EncodeName (see names.go for the scheme; ordinary keys keep their
// names, everything else is escaped reversibly). Every integer is Edm.Int64
// whatever its Go width (so a field has one type and filters match every
// record), floats Edm.Double, times
// Edm.DateTime, []byte Edm.Binary, durations Edm.Int64 nanoseconds, arrays and
// objects Edm.String holding JSON, nil the text "<nil>".
//
// # Limits and repairs
//
// Azure rejects what the Azurite emulator accepts in several places (see
// the constants in columns.go). The Encoder never produces such an entity:
//   - text over 32K UTF-16 units continues in "<name>_z1", "<name>_z2", …;
//     binary over 64 KiB likewise; Decode joins the pieces;
//   - fields past the property limit, and fields whose name repeats an
//     earlier one, go to the Extra column (JSON) with their original path;
//   - names over 255 characters are shortened with a hash and mapped back
//     through the Names column;
//   - uint64 over MaxInt64, NaN, ±Inf and times outside 1601..9999 are
//     stored as text; invalid UTF-8 becomes U+FFFD;
//   - what does not fit in 1 MiB is cut short with the visible marker
//     "…[tablelog: truncated, N bytes in all]" or left out, and the entity's
//     Truncated column counts it.
//
// Each repair is counted (Encoder.Repairs, Encoder.Truncations) so the
// writer can report it; nothing is dropped silently.
package schema

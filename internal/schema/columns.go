package schema

// System columns of a log entity. User fields never use these names: the
// name encoder escapes a field whose encoded name would collide with one of
// them (or with PartitionKey, RowKey, Timestamp), case-insensitively.
const (
	ColPartitionKey = "PartitionKey"
	ColRowKey       = "RowKey"
	ColTimestamp    = "Timestamp"

	ColTime     = "Time"     // Edm.DateTime, full precision (100 ns)
	ColLevel    = "Level"    // Edm.String: "debug", "info", "warn", "error", "dpanic", "panic", "fatal" or slog's text
	ColSeverity = "Severity" // Edm.Int32 on slog's scale: debug -4, info 0, warn 4, error 8, dpanic 12, panic 16, fatal 20
	ColMsg      = "Msg"      // Edm.String
	ColLogger   = "Logger"   // Edm.String, zap logger name
	ColCaller   = "Caller"   // Edm.String, "file:line"
	ColStack    = "Stack"    // Edm.String

	// ColExtra holds, as a JSON array of {"k":[path...],"v":value}, the
	// fields that could not be columns: past the property limit, or a
	// duplicate of an earlier field's name.
	ColExtra = "Extra"
	// ColNames maps property names that had to be shortened (over
	// MaxPropertyNameLen) to their original path: a JSON object
	// {"<property>":[path...]}.
	ColNames = "Names"
	// ColTruncated is an Edm.Int32 count of values that were cut short or
	// left out to fit the entity limit. Absent when nothing was truncated.
	ColTruncated = "Truncated"
)

// reserved lists the property names no field may take, lower-cased. The
// name encoder escapes the first character of a field named like one.
var reserved = [...]string{
	"partitionkey", "rowkey", "timestamp", "etag",
	"time", "level", "severity", "msg", "logger", "caller", "stack",
	"extra", "names", "truncated",
	// The words of the OData filter grammar: a property named like one
	// could not be referenced in a filter.
	"eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "true", "false", "null",
	"datetime", "guid", "binary",
}

// Service limits of Azure Table Storage (and the Cosmos DB Table API).
// Several of these are not enforced by the Azurite emulator.
const (
	MaxBatchOps         = 100                     // operations in one entity-group transaction
	MaxBatchBytes       = 4 << 20                 // payload of one transaction
	MaxEntityBytes      = 1 << 20                 // one entity, in Azure's accounting
	MaxProperties       = 252                     // custom properties (plus PartitionKey, RowKey, Timestamp)
	MaxPropertyNameLen  = 255                     // characters
	MaxStringChars      = 32 * 1024               // UTF-16 code units in one Edm.String
	MaxBinaryBytes      = 64 * 1024               // bytes in one Edm.Binary
	MaxKeyChars         = 512                     // our cap for PartitionKey and RowKey (Azure: 1 KiB)
	PartitionEntitiesPS = 2000                    // rough per-partition throughput target, entities/s
	minDateTimeUnix     = -11644473600            // 1601-01-01T00:00:00Z
	maxDateTimeUnix     = 253402300799            // 9999-12-31T23:59:59Z
	entityBudget        = MaxEntityBytes - 64<<10 // what the encoder fills; the rest is headroom for meta columns
)

// Severity values of the levels, on slog's scale.
const (
	SeverityDebug  = -4
	SeverityInfo   = 0
	SeverityWarn   = 4
	SeverityError  = 8
	SeverityDPanic = 12
	SeverityPanic  = 16
	SeverityFatal  = 20
)

// Catalog: the first write of a process into a service/day partition records
// the pair in the logs table under CatalogPartition, RowKey
// "<service>_<yyyyMMdd>" (the PartitionKey it names). CatalogPartition can
// never be a log partition: '~' is not allowed in service names.
const CatalogPartition = "~catalog"

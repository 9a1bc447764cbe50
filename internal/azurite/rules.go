package azurite

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Azure's limits the strict proxy enforces.
const (
	MaxBatchOperations = 100      // operations in one $batch change set
	MaxBatchBytes      = 4 << 20  // $batch request body
	MaxEntityBytes     = 1 << 20  // entity size in Azure's accounting (EntitySize)
	MaxProperties      = 252      // custom properties (besides PartitionKey, RowKey, Timestamp)
	MaxPropertyName    = 255      // UTF-16 code units in a property name
	MaxStringChars     = 32 << 10 // UTF-16 code units in an Edm.String value
	MaxBinaryBytes     = 64 << 10 // bytes in an Edm.Binary value
)

// Azure error codes the strict proxy answers with.
const (
	CodeTooManyProperties       = "TooManyProperties"
	CodePropertyNameInvalid     = "PropertyNameInvalid"
	CodePropertyNameTooLong     = "PropertyNameTooLong"
	CodePropertyValueTooLarge   = "PropertyValueTooLarge"
	CodeEntityTooLarge          = "EntityTooLarge"
	CodeOutOfRangeInput         = "OutOfRangeInput"
	CodeInvalidInput            = "InvalidInput"
	CodeDifferentPartitions     = "CommandsInBatchActOnDifferentPartitions"
	CodeInvalidDuplicateRow     = "InvalidDuplicateRow"
	CodeRequestBodyTooLarge     = "RequestBodyTooLarge"
	CodeDuplicatePropertiesSpec = "DuplicatePropertiesSpecified"
)

const (
	msgTooManyProperties     = "The entity contains more properties than allowed. Each entity can include up to 252 properties to store data. Each entity also has 3 system properties."
	msgPropertyNameInvalid   = "The property name is invalid."
	msgPropertyNameTooLong   = "The property name exceeds the maximum allowed length (255)."
	msgPropertyValueTooLarge = "The property value exceeds the maximum allowed size (64KB). If the property value is a string, it is UTF-16 encoded and the maximum number of characters should be 32K or less."
	msgEntityTooLarge        = "The entity is larger than the maximum size permitted."
	msgOutOfRangeInput       = "One of the request inputs is out of range."
	msgTooManyOperations     = "The batch request operation exceeds the maximum 100 changes per change set."
	msgDifferentPartitions   = "All commands in a batch must operate on same entity group."
	msgInvalidDuplicateRow   = "A command with RowKey '%s' is already present in the batch. An entity can appear only once in a batch."
	msgRequestBodyTooLarge   = "The request body is too large and exceeds the maximum permissible limit."
	msgDuplicateProperties   = "A property is specified more than one time."
)

// Rejection is an error real Azure answers a request with. It is the error
// type ValidateEntity returns.
type Rejection struct {
	Status  int    // HTTP status, e.g. 400
	Code    string // Azure error code, e.g. "TooManyProperties"
	Message string // Azure's message, without request id and time
	// Index is the failing operation's position in a batch, or -1.
	Index int
	// Detail says which property or value broke the rule (for test
	// failure messages; Azure does not return it).
	Detail string
}

func (r *Rejection) Error() string {
	s := fmt.Sprintf("%d %s: %s", r.Status, r.Code, r.Message)
	if r.Index >= 0 {
		s = fmt.Sprintf("operation %d: %s", r.Index, s)
	}
	if r.Detail != "" {
		s += " (" + r.Detail + ")"
	}
	return s
}

func reject(code, msg, detail string) *Rejection {
	return &Rejection{Status: http.StatusBadRequest, Code: code, Message: msg, Index: -1, Detail: detail}
}

// ValidateEntity reports whether real Azure accepts body, an entity in OData
// JSON as the aztables SDK sends it (PartitionKey, RowKey, properties and
// "name@odata.type" annotations), in an insert, upsert, update or merge. It
// returns nil if Azure accepts it, a *Rejection with Azure's status and
// error code if a rule the strict proxy enforces rejects it, and a plain
// error if body is not a JSON object. It checks:
//
//   - at most 252 custom properties (TooManyProperties);
//   - property names are C# identifiers: a letter or '_', then letters,
//     digits, '_' and combining marks (PropertyNameInvalid), of at most 255
//     UTF-16 code units (PropertyNameTooLong); a property given twice is
//     DuplicatePropertiesSpecified;
//   - Edm.DateTime values not before 1601-01-01T00:00:00Z (OutOfRangeInput);
//   - Edm.String values of at most 32,768 UTF-16 code units and Edm.Binary
//     values of at most 65,536 bytes (PropertyValueTooLarge);
//   - the entity's size in Azure's accounting at most 1 MiB
//     (EntityTooLarge), see EntitySize.
//
// It does not check key characters and lengths, which Azurite enforces.
// Safe for concurrent use.
func ValidateEntity(body []byte) error {
	rej, err := validateEntity(body, "", "", false)
	if err != nil {
		return err
	}
	if rej != nil {
		return rej
	}
	return nil
}

// EntitySize returns the size of an entity (OData JSON) as Azure counts it
// against the 1 MiB limit: 4 bytes, plus 2 per UTF-16 code unit of
// PartitionKey and RowKey, plus for each custom property 8 bytes, 2 per code
// unit of its name, and its value: Edm.String 4 + 2 per code unit,
// Edm.Binary 4 + its length, Edm.Int32 4, Edm.Boolean 1, Edm.Int64,
// Edm.Double and Edm.DateTime 8, Edm.Guid 16. Null properties count nothing.
func EntitySize(body []byte) (int, error) {
	e, err := parseEntity(body)
	if err != nil {
		return 0, err
	}
	size, _ := e.size("", "", false)
	return size, nil
}

type property struct {
	name  string
	value json.RawMessage
	typ   string // from the name@odata.type annotation
}

type parsedEntity struct {
	props      []property
	pk, rk     *string
	duplicates []string
}

func parseEntity(body []byte) (*parsedEntity, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("entity is not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("entity is not a JSON object")
	}
	e := &parsedEntity{}
	types := map[string]string{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("entity is not JSON: %w", err)
		}
		name := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("entity is not JSON: %w", err)
		}
		if seen[name] {
			e.duplicates = append(e.duplicates, name)
		}
		seen[name] = true
		if strings.HasPrefix(name, "odata.") || strings.HasPrefix(name, "@odata.") {
			continue
		}
		if base, ann, ok := strings.Cut(name, "@"); ok {
			if ann == "odata.type" {
				var t string
				json.Unmarshal(raw, &t)
				types[base] = t
			}
			continue
		}
		switch name {
		case "PartitionKey", "RowKey":
			var s string
			if json.Unmarshal(raw, &s) == nil {
				if name == "PartitionKey" {
					e.pk = &s
				} else {
					e.rk = &s
				}
			}
			continue
		case "Timestamp":
			continue
		}
		e.props = append(e.props, property{name: name, value: raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("entity is not JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("entity has data after the JSON object")
	}
	for i := range e.props {
		e.props[i].typ = types[e.props[i].name]
	}
	return e, nil
}

// validateEntity checks body; urlPK/urlRK are the keys from the request URL
// of an update or merge (used when the body has none).
func validateEntity(body []byte, urlPK, urlRK string, haveURLKeys bool) (*Rejection, error) {
	e, err := parseEntity(body)
	if err != nil {
		return nil, err
	}
	if len(e.duplicates) > 0 {
		return reject(CodeDuplicatePropertiesSpec, msgDuplicateProperties, "property "+quote(e.duplicates[0])), nil
	}
	for _, p := range e.props {
		if n := utf16Len(p.name); n > MaxPropertyName {
			return reject(CodePropertyNameTooLong, msgPropertyNameTooLong, fmt.Sprintf("property name of %d characters", n)), nil
		}
		if !validPropertyName(p.name) {
			return reject(CodePropertyNameInvalid, msgPropertyNameInvalid, "property "+quote(p.name)), nil
		}
	}
	if n := e.count(); n > MaxProperties {
		return reject(CodeTooManyProperties, msgTooManyProperties, fmt.Sprintf("%d custom properties", n)), nil
	}
	size, rej := e.size(urlPK, urlRK, haveURLKeys)
	if rej != nil {
		return rej, nil
	}
	if size > MaxEntityBytes {
		return reject(CodeEntityTooLarge, msgEntityTooLarge, fmt.Sprintf("%d bytes", size)), nil
	}
	return nil, nil
}

// count returns the number of custom properties with a value.
func (e *parsedEntity) count() int {
	n := 0
	for _, p := range e.props {
		if !isNull(p.value) {
			n++
		}
	}
	return n
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// size computes Azure's entity size and checks each value on the way.
func (e *parsedEntity) size(urlPK, urlRK string, haveURLKeys bool) (int, *Rejection) {
	pk, rk := urlPK, urlRK
	if e.pk != nil && !haveURLKeys {
		pk = *e.pk
	}
	if e.rk != nil && !haveURLKeys {
		rk = *e.rk
	}
	size := 4 + 2*utf16Len(pk) + 2*utf16Len(rk)
	for _, p := range e.props {
		if isNull(p.value) {
			continue
		}
		v, rej := valueSize(p)
		if rej != nil {
			return 0, rej
		}
		size += 8 + 2*utf16Len(p.name) + v
	}
	return size, nil
}

// minDateTime is the earliest Edm.DateTime Azure stores.
var minDateTime = time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC)

// valueSize returns the size of one property's value in Azure's accounting,
// or the rejection its value earns.
func valueSize(p property) (int, *Rejection) {
	raw := bytes.TrimSpace(p.value)
	var s string
	isString := len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil
	switch p.typ {
	case "Edm.Binary":
		b, err := base64.StdEncoding.DecodeString(s)
		n := len(b)
		if err != nil {
			n = base64.StdEncoding.DecodedLen(len(s))
		}
		if n > MaxBinaryBytes {
			return 0, reject(CodePropertyValueTooLarge, msgPropertyValueTooLarge, fmt.Sprintf("property %s: %d binary bytes", quote(p.name), n))
		}
		return 4 + n, nil
	case "Edm.Int32":
		return 4, nil
	case "Edm.Boolean":
		return 1, nil
	case "Edm.Int64", "Edm.Double":
		return 8, nil
	case "Edm.Guid":
		return 16, nil
	case "Edm.DateTime":
		if isString && dateBefore1601(s) {
			return 0, reject(CodeOutOfRangeInput, msgOutOfRangeInput, fmt.Sprintf("property %s: Edm.DateTime %s is before 1601-01-01", quote(p.name), s))
		}
		return 8, nil
	case "Edm.String", "":
	default:
		return 8, nil // unknown type: Azurite or Azure will judge it
	}
	switch {
	case isString:
		n := utf16Len(s)
		if n > MaxStringChars {
			return 0, reject(CodePropertyValueTooLarge, msgPropertyValueTooLarge, fmt.Sprintf("property %s: %d characters", quote(p.name), n))
		}
		return 4 + 2*n, nil
	case len(raw) > 0 && (raw[0] == 't' || raw[0] == 'f'):
		return 1, nil // JSON boolean: Edm.Boolean
	case bytes.ContainsAny(raw, ".eE"):
		return 8, nil // JSON number with fraction or exponent: Edm.Double
	default:
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil && n >= -1<<31 && n < 1<<31 {
			return 4, nil // JSON integer: Edm.Int32
		}
		return 8, nil
	}
}

// dateBefore1601 reports whether an Edm.DateTime literal lies before
// 1601-01-01T00:00:00Z. Literals it cannot read are left to the server.
func dateBefore1601(s string) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", "2006-01-02T15:04Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Before(minDateTime)
		}
	}
	// Years Go cannot parse (e.g. negative or 5-digit) are out of range too.
	if i := strings.IndexByte(s, '-'); i > 0 {
		if y, err := strconv.Atoi(s[:i]); err == nil {
			return y < 1601
		}
	}
	return strings.HasPrefix(s, "-")
}

// validPropertyName reports whether name is a C# identifier (without the
// '@' verbatim prefix or escapes): it starts with a letter (Lu, Ll, Lt, Lm,
// Lo, Nl) or '_' and continues with letters, decimal digits (Nd),
// connectors (Pc), combining marks (Mn, Mc) or formatting characters (Cf).
func validPropertyName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		if r == utf8.RuneError {
			return false
		}
		letter := unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || r == '_'
		if i == 0 {
			if !letter {
				return false
			}
			continue
		}
		if !letter && !unicode.In(r, unicode.Nd, unicode.Pc, unicode.Mn, unicode.Mc, unicode.Cf) {
			return false
		}
	}
	return true
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r) // invalid UTF-8 ranges as U+FFFD: 1
	}
	return n
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}

// checkRequest applies the strict rules to one request whose body has been
// read. It returns nil for requests the rules do not cover or that pass.
func checkRequest(r *http.Request, body []byte) *Rejection {
	if isBatch(r) {
		return checkBatch(r.Header.Get("Content-Type"), body)
	}
	method := r.Method
	if m := r.Header.Get("X-HTTP-Method"); m != "" && method == http.MethodPost {
		method = m
	}
	res := lastSegment(r.URL)
	table, keys, hasKeys := strings.Cut(res, "(")
	if table == "" || strings.EqualFold(table, "Tables") {
		return nil
	}
	switch method {
	case http.MethodPost:
		if hasKeys && keys != ")" {
			return nil
		}
		return checkEntity(body, "", "", false)
	case http.MethodPut, http.MethodPatch, "MERGE":
		if !hasKeys {
			return nil
		}
		pk, rk, ok := parseKeys("(" + keys)
		return checkEntity(body, pk, rk, ok)
	}
	return nil
}

func checkEntity(body []byte, pk, rk string, haveKeys bool) *Rejection {
	rej, err := validateEntity(body, pk, rk, haveKeys)
	if err != nil {
		return nil // not an entity: let Azurite answer
	}
	return rej
}

func isBatch(r *http.Request) bool {
	return r.Method == http.MethodPost && lastSegment(r.URL) == "$batch"
}

func lastSegment(u *url.URL) string {
	p := strings.TrimSuffix(u.Path, "/")
	return p[strings.LastIndexByte(p, '/')+1:]
}

// parseKeys reads "(PartitionKey='a',RowKey='b')" (URL-decoded, with ”
// escapes).
func parseKeys(s string) (pk, rk string, ok bool) {
	s = strings.TrimPrefix(s, "(")
	s = strings.TrimSuffix(s, ")")
	var found int
	for s != "" {
		name, rest, ok := strings.Cut(s, "=")
		if !ok || !strings.HasPrefix(rest, "'") {
			return "", "", false
		}
		rest = rest[1:]
		var v strings.Builder
		for {
			i := strings.IndexByte(rest, '\'')
			if i < 0 {
				return "", "", false
			}
			v.WriteString(rest[:i])
			rest = rest[i+1:]
			if strings.HasPrefix(rest, "'") {
				v.WriteByte('\'')
				rest = rest[1:]
				continue
			}
			break
		}
		switch strings.TrimSpace(name) {
		case "PartitionKey":
			pk = v.String()
			found++
		case "RowKey":
			rk = v.String()
			found++
		}
		s = strings.TrimPrefix(rest, ",")
	}
	return pk, rk, found == 2
}

// errorBody is Azure's OData JSON error body for rej.
func errorBody(rej *Rejection, prefix string) []byte {
	msg := fmt.Sprintf("%s%s\nRequestId:%s\nTime:%s", prefix, rej.Message, newUUID(),
		time.Now().UTC().Format("2006-01-02T15:04:05.0000000Z"))
	b, _ := json.Marshal(map[string]any{"odata.error": map[string]any{
		"code":    rej.Code,
		"message": map[string]string{"lang": "en-US", "value": msg},
	}})
	return b
}

const jsonErrorType = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"

// writeAzureError answers with rej the way Azure does for a single request.
func writeAzureError(w http.ResponseWriter, rej *Rejection) {
	h := w.Header()
	h.Set("Content-Type", jsonErrorType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("x-ms-error-code", rej.Code)
	h.Set("x-ms-request-id", newUUID())
	h.Set("x-ms-version", "2019-02-02")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(rej.Status)
	w.Write(errorBody(rej, ""))
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

package schema

import (
	"strconv"
)

// extraString stores a text value in Extra, cut short if Extra is full.
func (e *Encoder) extraString(key, v string) {
	e.repairs++
	room := maxExtraBytes - len(e.extra) - 64 - 8*len(key)
	if room < 64 {
		e.truncs++
		return
	}
	e.tmp, _, _, _ = appendJSONString(e.tmp[:0], v, room/6)
	if len(e.tmp)-2 < len(v) {
		e.truncs++
	}
	e.appendExtra(key, e.tmp)
}

// extraRaw stores a JSON value in Extra.
func (e *Encoder) extraRaw(key string, js []byte) {
	e.repairs++
	if len(e.extra)+len(js)+64+8*len(key) > maxExtraBytes {
		e.truncs++
		return
	}
	e.appendExtra(key, js)
}

func (e *Encoder) appendExtra(key string, js []byte) {
	if len(e.extra) > 0 {
		e.extra = append(e.extra, ',')
	}
	e.extra = append(e.extra, `{"k":`...)
	e.extra = e.appendPath(e.extra, key)
	e.extra = append(e.extra, `,"v":`...)
	e.extra = append(e.extra, js...)
	e.extra = append(e.extra, '}')
}

// appendPath appends the JSON array of the open groups and key.
func (e *Encoder) appendPath(dst []byte, key string) []byte {
	dst = append(dst, '[')
	for _, g := range e.groups {
		dst, _, _, _ = appendJSONString(dst, g, MaxStringChars)
		dst = append(dst, ',')
	}
	dst, _, _, _ = appendJSONString(dst, key, MaxStringChars)
	return append(dst, ']')
}

// Finish writes the Extra, Names and Truncated columns, closes the entity
// and returns its JSON. The slice is valid until the next Reset.
func (e *Encoder) Finish() []byte {
	if len(e.extra) > 0 {
		e.tmp = append(e.tmp[:0], '[')
		e.tmp = append(e.tmp, e.extra...)
		e.tmp = append(e.tmp, ']')
		e.name = append(e.name[:0], ColExtra...)
		e.writeMeta(string(e.tmp))
	}
	if e.nnames > 0 {
		e.tmp = append(e.tmp[:0], '{')
		e.tmp = append(e.tmp, e.names...)
		e.tmp = append(e.tmp, '}')
		e.name = append(e.name[:0], ColNames...)
		e.writeMeta(string(e.tmp))
	}
	if e.truncs > 0 {
		e.buf = append(e.buf, `,"Truncated":`...)
		e.buf = strconv.AppendInt(e.buf, int64(e.truncs), 10)
		e.nprops++
		e.size += 8 + 2*len(ColTruncated) + 4
	}
	e.buf = append(e.buf, '}')
	return e.buf
}

// writeMeta writes a meta column (Extra, Names) in as many chunk columns as
// it needs; their property slots and budget were reserved.
func (e *Encoder) writeMeta(s string) {
	base := len(e.name)
	for chunk := 0; s != ""; chunk++ {
		if chunk > 0 {
			e.name = append(e.name[:base], '_', 'z')
			e.name = strconv.AppendInt(e.name, int64(chunk), 10)
		}
		e.buf = append(e.buf, ',', '"')
		e.buf = append(e.buf, e.name...)
		e.buf = append(e.buf, '"', ':')
		var units, used int
		e.buf, units, used, _ = appendJSONString(e.buf, s, MaxStringChars)
		e.nprops++
		e.size += 8 + 2*len(e.name) + 4 + 2*units
		s = s[used:]
	}
}

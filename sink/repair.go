package sink

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tablelog/tablelog/internal/schema"
)

// Repair entities. When the service rejects a record for good (the rest of
// its transaction is stored without it), the sink stores in its place an
// entity with the same keys, the record's Time, Level, Severity and Msg
// where they can be read from it, and a group "tablelog" holding
//
//	error:    why the service rejected the record
//	original: the record's entity JSON, as much as fits
//
// (decoded by schema.Decode as Fields["tablelog"]["error"] and
// ["original"]). Such records count in Stats.Replaced and are reported to
// the ErrorHandler.
const (
	RepairGroup    = "tablelog"
	RepairKeyError = "error"
	RepairKeyJSON  = "original"
)

// repair stores a repair entity for r, which the service rejected with
// cause, or gives r up and reports it.
func (s *Sink) repair(r record, cause *OpError) {
	pk, rk, entity, err := s.repairEntity(r, cause)
	if err == nil {
		e := s.insertOne(s.hardCtx, entity, s.keepDenied())
		if e == nil {
			s.c.replaced.Add(1)
			s.finish([]record{r}, true, nil)
			s.opts.ErrorHandler(fmt.Errorf("sink: the service rejected record %s/%s (%v); stored a repair entity in its place", pk, rk, cause))
			return
		}
		if e.class == aborted {
			s.finish([]record{r}, false, e)
			return
		}
		err = fmt.Errorf("%w; its repair entity was rejected too: %w", cause, e)
	}
	if !errors.Is(err, cause) {
		err = fmt.Errorf("%w; no repair entity can be made: %w", cause, err)
	}
	err = fmt.Errorf("sink: record %s/%s not stored: the service rejected it: %w", pk, rk, err)
	s.finish([]record{r}, false, err)
	s.opts.ErrorHandler(err)
}

// repairEntity builds the repair entity of r. pk and rk are the record's
// keys (for messages).
func (s *Sink) repairEntity(r record, cause *OpError) (pk, rk string, entity []byte, err error) {
	var m map[string]json.RawMessage
	if jerr := json.Unmarshal(r.data, &m); jerr != nil {
		m = nil
	}
	str := func(k string) (string, bool) {
		var v string
		raw, ok := m[k]
		if !ok || json.Unmarshal(raw, &v) != nil {
			return "", false
		}
		return v, true
	}
	pk, _ = str(schema.ColPartitionKey)
	rk, _ = str(schema.ColRowKey)
	if pk == "" {
		pk = r.pk
	}
	if pk != r.pk || rk == "" {
		return pk, rk, nil, errors.New("cannot read the record's keys back")
	}
	if _, perr := schema.ParseRowKey(rk); perr != nil {
		return pk, rk, nil, perr
	}

	st := s.getState()
	defer s.putState(st)
	enc := &st.enc
	enc.Reset(pk, rk)
	if v, ok := str(schema.ColTime); ok {
		if t, terr := time.Parse(time.RFC3339Nano, v); terr == nil {
			enc.SetTime(t)
		}
	}
	if lvl, ok := str(schema.ColLevel); ok {
		var sev int
		if raw, ok := m[schema.ColSeverity]; ok {
			_ = json.Unmarshal(raw, &sev)
		}
		enc.SetLevel(lvl, sev)
	}
	if msg, ok := str(schema.ColMsg); ok {
		enc.SetMessage(msg)
	}
	enc.OpenGroup(RepairGroup)
	enc.String(RepairKeyError, cause.Error())
	enc.String(RepairKeyJSON, string(r.data))
	enc.CloseGroup()
	return pk, rk, append([]byte(nil), enc.Finish()...), nil
}

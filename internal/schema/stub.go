package schema

// TEMPORARY STUB: the contract; replaced by the real encoder.

import "time"

type Encoder struct{}
type Fragment struct{}

func (e *Encoder) Reset(partitionKey, rowKey string)    { panic("unimplemented") }
func (e *Encoder) ResetFragment()                       { panic("unimplemented") }
func (e *Encoder) Fragment() Fragment                   { panic("unimplemented") }
func (e *Encoder) AppendFragment(f Fragment)            { panic("unimplemented") }
func (e *Encoder) SetTime(t time.Time)                  { panic("unimplemented") }
func (e *Encoder) SetLevel(name string, severity int)   { panic("unimplemented") }
func (e *Encoder) SetMessage(msg string)                { panic("unimplemented") }
func (e *Encoder) SetLogger(name string)                { panic("unimplemented") }
func (e *Encoder) SetCaller(caller string)              { panic("unimplemented") }
func (e *Encoder) SetStack(stack string)                { panic("unimplemented") }
func (e *Encoder) OpenGroup(name string)                { panic("unimplemented") }
func (e *Encoder) CloseGroup()                          { panic("unimplemented") }
func (e *Encoder) String(key, v string)                 { panic("unimplemented") }
func (e *Encoder) Bool(key string, v bool)              { panic("unimplemented") }
func (e *Encoder) Int64(key string, v int64)            { panic("unimplemented") }
func (e *Encoder) Int32(key string, v int32)            { panic("unimplemented") }
func (e *Encoder) Uint64(key string, v uint64)          { panic("unimplemented") }
func (e *Encoder) Float64(key string, v float64)        { panic("unimplemented") }
func (e *Encoder) Time(key string, t time.Time)         { panic("unimplemented") }
func (e *Encoder) Duration(key string, d time.Duration) { panic("unimplemented") }
func (e *Encoder) Bytes(key string, b []byte)           { panic("unimplemented") }
func (e *Encoder) RawJSON(key string, js []byte)        { panic("unimplemented") }
func (e *Encoder) Any(key string, v any)                { panic("unimplemented") }
func (e *Encoder) Null(key string)                      { panic("unimplemented") }
func (e *Encoder) Finish() []byte                       { panic("unimplemented") }
func (e *Encoder) Repairs() int                         { panic("unimplemented") }
func (e *Encoder) Truncations() int                     { panic("unimplemented") }

type Entity struct {
	PartitionKey, RowKey       string
	Timestamp                  time.Time // server time
	Time                       time.Time
	Level                      string
	Severity                   int
	Msg, Logger, Caller, Stack string
	Fields                     map[string]any // original names; groups as nested map[string]any; Int64 → int64, Int32 → int32, Double → float64, DateTime → time.Time, Binary → []byte, Bool → bool, String → string
	Truncated                  int
}

func Decode(raw []byte) (Entity, error)               { panic("unimplemented") }
func EncodeName(path ...string) string                { panic("unimplemented") }
func DecodeName(prop string) (path []string, ok bool) { panic("unimplemented") }

package redact

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"go.uber.org/zap/zapcore"
)

// NewCore wraps core so that nothing it writes carries a secret: the entry's
// message and every string, byte string, error, stringer, reflected, object
// and array field (nested ones included) are redacted by r before core sees
// them. String fields under a sensitive key (see IsSensitiveKey) are replaced
// whole.
//
// Wrap each core that encodes and writes (an ioCore, an observer): the
// wrapper asks core only whether a level is enabled, so wrapping a Tee of
// cores at different levels would hand every entry to all of them. Samplers
// and Tees belong outside: zapcore.NewTee(NewCore(a, r), NewCore(b, r)).
func NewCore(core zapcore.Core, r *Redactor) zapcore.Core {
	return &redactCore{Core: core, r: r}
}

type redactCore struct {
	zapcore.Core
	r *Redactor
}

// Level keeps zapcore.LevelOf accurate through the wrapper.
func (c *redactCore) Level() zapcore.Level { return zapcore.LevelOf(c.Core) }

func (c *redactCore) With(fields []zapcore.Field) zapcore.Core {
	return &redactCore{Core: c.Core.With(c.fields(fields)), r: c.r}
}

// Check registers the wrapper, never the inner core, so that every write
// goes through Write below.
func (c *redactCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *redactCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	ent.Message = c.r.String(ent.Message)
	ent.Stack = c.r.String(ent.Stack)
	return c.Core.Write(ent, c.fields(fields))
}

// fields returns fields redacted, reusing the slice's backing array only
// when nothing changes (the caller's slice is never written to).
func (c *redactCore) fields(fields []zapcore.Field) []zapcore.Field {
	var out []zapcore.Field
	for i, f := range fields {
		g, changed := c.field(f)
		if !changed {
			if out != nil {
				out = append(out, f)
			}
			continue
		}
		if out == nil {
			out = make([]zapcore.Field, i, len(fields))
			copy(out, fields[:i])
		}
		out = append(out, g)
	}
	if out == nil {
		return fields
	}
	return out
}

// field returns f redacted and whether it differs from f.
func (c *redactCore) field(f zapcore.Field) (zapcore.Field, bool) {
	switch f.Type {
	case zapcore.StringType:
		s := c.r.String(f.String)
		if IsSensitiveKey(f.Key) && f.String != "" {
			s = Marker
		}
		if s == f.String {
			return f, false
		}
		f.String = s
		return f, true
	case zapcore.ByteStringType:
		b, _ := f.Interface.([]byte)
		if IsSensitiveKey(f.Key) && len(b) > 0 {
			f.Interface = []byte(Marker)
			return f, true
		}
		if s := c.r.String(string(b)); s != string(b) {
			f.Interface = []byte(s)
			return f, true
		}
		return f, false
	case zapcore.ErrorType, zapcore.StringerType, zapcore.ReflectType,
		zapcore.ObjectMarshalerType, zapcore.ArrayMarshalerType, zapcore.InlineMarshalerType:
		// These are rendered only when encoded: let the field encode itself
		// into an encoder that redacts whatever strings it is given.
		return zapcore.Field{Type: zapcore.InlineMarshalerType, Interface: inlineField{f: f, r: c.r}}, true
	default:
		// Numbers, bools, times, durations, binary, namespaces, skips.
		return f, false
	}
}

// inlineField encodes a field through a redacting encoder, in place.
type inlineField struct {
	f zapcore.Field
	r *Redactor
}

func (i inlineField) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	i.f.AddTo(objectEncoder{ObjectEncoder: enc, r: i.r})
	return nil
}

// objectEncoder redacts the strings added to an ObjectEncoder.
type objectEncoder struct {
	zapcore.ObjectEncoder
	r *Redactor
}

func (e objectEncoder) AddString(key, value string) {
	if IsSensitiveKey(key) && value != "" {
		value = Marker
	}
	e.ObjectEncoder.AddString(key, e.r.String(value))
}

func (e objectEncoder) AddByteString(key string, value []byte) {
	e.AddString(key, string(value))
}

func (e objectEncoder) AddReflected(key string, value any) error {
	return e.ObjectEncoder.AddReflected(key, reflected(e.r, value))
}

func (e objectEncoder) AddObject(key string, m zapcore.ObjectMarshaler) error {
	return e.ObjectEncoder.AddObject(key, objectMarshaler{m: m, r: e.r})
}

func (e objectEncoder) AddArray(key string, m zapcore.ArrayMarshaler) error {
	return e.ObjectEncoder.AddArray(key, arrayMarshaler{m: m, r: e.r})
}

type objectMarshaler struct {
	m zapcore.ObjectMarshaler
	r *Redactor
}

func (o objectMarshaler) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return o.m.MarshalLogObject(objectEncoder{ObjectEncoder: enc, r: o.r})
}

type arrayMarshaler struct {
	m zapcore.ArrayMarshaler
	r *Redactor
}

func (a arrayMarshaler) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	return a.m.MarshalLogArray(arrayEncoder{ArrayEncoder: enc, r: a.r})
}

// arrayEncoder redacts the strings appended to an ArrayEncoder.
type arrayEncoder struct {
	zapcore.ArrayEncoder
	r *Redactor
}

func (e arrayEncoder) AppendString(v string)     { e.ArrayEncoder.AppendString(e.r.String(v)) }
func (e arrayEncoder) AppendByteString(v []byte) { e.AppendString(string(v)) }

func (e arrayEncoder) AppendReflected(v any) error {
	return e.ArrayEncoder.AppendReflected(reflected(e.r, v))
}

func (e arrayEncoder) AppendObject(m zapcore.ObjectMarshaler) error {
	return e.ArrayEncoder.AppendObject(objectMarshaler{m: m, r: e.r})
}

func (e arrayEncoder) AppendArray(m zapcore.ArrayMarshaler) error {
	return e.ArrayEncoder.AppendArray(arrayMarshaler{m: m, r: e.r})
}

// reflected returns v redacted, as a json.RawMessage that encoders reflecting
// through encoding/json write verbatim, or as a redacted string when v does
// not marshal to JSON.
func reflected(r *Redactor, v any) any {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		return r.String(v)
	case time.Duration, time.Time, bool, int, int64, float64:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return nil
		}
		return r.String(fmt.Sprintf("%+v", v))
	}
	return json.RawMessage(r.JSON(b))
}

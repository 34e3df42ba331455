package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// PostgreSQL's text and jsonb hold neither NUL (a jsonb string refuses
// "\u0000", a text parameter the byte 0) nor invalid UTF-8. A provider's
// build log or an error body may carry both; a write refused for them would
// be refused again on every retry, and a run's finish with it. So text and
// documents are made storable on the way out: each NUL and each invalid
// sequence becomes U+FFFD.

const replacement = "\uFFFD"

// Text is s as a text column can hold it.
func Text(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, replacement), "\x00", replacement)
}

// NullText is Text, NULL for "".
func NullText(s string) *string { return NullString(Text(s)) }

// JSON is raw as a jsonb column can hold it, NULL for an empty or null
// document. A document that is not JSON is passed on for the database to
// refuse with its own message.
func JSON(raw json.RawMessage) json.RawMessage {
	raw = NullRaw(raw)
	if raw == nil || (!bytes.Contains(raw, []byte(`\u0000`)) && utf8.Valid(raw)) {
		return raw
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers keep their digits
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	out, err := json.Marshal(scrub(v))
	if err != nil {
		return raw
	}
	return out
}

// scrub applies Text to every string and key of a decoded document.
func scrub(v any) any {
	switch t := v.(type) {
	case string:
		return Text(t)
	case []any:
		for i := range t {
			t[i] = scrub(t[i])
		}
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[Text(k)] = scrub(x)
		}
		return out
	}
	return v
}

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
// document. jsonb also refuses a lone surrogate escape ("\ud800"), which
// decoding turns into U+FFFD too. A document that is not JSON is passed on
// for the database to refuse with its own message. (Two keys that differ
// only in what is replaced become one; the document had NULs in its keys.)
func JSON(raw json.RawMessage) json.RawMessage {
	raw = NullRaw(raw)
	if raw == nil || (!badEscape(raw) && utf8.Valid(raw)) || !json.Valid(raw) {
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

// badEscape reports whether raw may hold an escape jsonb refuses: \u0000
// or a surrogate (\ud800-\udfff; a valid pair is decoded and re-encoded
// as the character it stands for). An escaped backslash before "u" is a
// false alarm that costs only a decode.
func badEscape(raw []byte) bool {
	for i := 0; ; {
		j := bytes.Index(raw[i:], []byte(`\u`))
		if j < 0 || i+j+6 > len(raw) {
			return false
		}
		h := bytes.ToLower(raw[i+j+2 : i+j+6])
		if string(h) == "0000" || (h[0] == 'd' && h[1] >= '8' && h[1] <= 'f') {
			return true
		}
		i += j + 2
	}
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

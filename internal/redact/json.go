package redact

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// sensitiveKeys are object keys whose string values are replaced whole,
// whatever they look like. Keys are compared case-insensitively.
var sensitiveKeys = map[string]bool{
	"password": true, "passwd": true, "secret": true, "client_secret": true,
	"token": true, "access_token": true, "refresh_token": true, "id_token": true, "auth_token": true,
	"apikey": true, "api_key": true, "authorization": true, "cookie": true, "set-cookie": true,
	"service_role_key": true, "private_key": true, "webhook_secret": true,
}

// IsSensitiveKey reports whether a field or object key names a value that is
// secret whatever it looks like, such as "password" or "access_token".
func IsSensitiveKey(key string) bool {
	if len(key) > len("service_role_key") {
		return false
	}
	return sensitiveKeys[strings.ToLower(key)]
}

// JSON returns raw with every string redacted as by String, and the string
// values of sensitive keys (password, token, authorization, ...) replaced
// whole. Object keys are kept unless they contain a secret themselves. The
// result is valid compact JSON whenever raw is valid JSON; invalid input is
// redacted as text. Input with nothing to redact is returned as it is.
func (r *Redactor) JSON(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 {
		return raw
	}
	// Without a backslash, every string is spelled in raw as it decodes, so
	// raw can be searched as text.
	text := string(raw)
	if bytes.IndexByte(raw, '\\') < 0 && len(findSpans(r.set(), text, nil)) == 0 && !hasSensitiveKey(text) {
		return raw
	}
	if !json.Valid(raw) {
		return json.RawMessage(r.String(string(raw)))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	w := jsonWriter{r: r, out: make([]byte, 0, len(raw)+16)}
	for {
		tok, err := dec.Token()
		if err != nil {
			// raw is valid, so the only error is the end of the input.
			break
		}
		w.token(tok)
	}
	return w.out
}

// hasSensitiveKey reports whether the JSON text s, which holds no
// backslash, has an object key for which IsSensitiveKey is true. With no
// escapes every '"' delimits a string, so a key is the string before a ':'.
func hasSensitiveKey(s string) bool {
	for off := 0; ; {
		i := strings.IndexByte(s[off:], ':')
		if i < 0 {
			return false
		}
		colon := off + i
		off = colon + 1
		end := colon
		for end > 0 && (s[end-1] == ' ' || s[end-1] == '\t' || s[end-1] == '\n' || s[end-1] == '\r') {
			end--
		}
		if end == 0 || s[end-1] != '"' {
			continue
		}
		if start := strings.LastIndexByte(s[:end-1], '"'); start >= 0 && IsSensitiveKey(s[start+1:end-1]) {
			return true
		}
	}
}

// container is one open object or array while re-encoding.
type container struct {
	object    bool
	n         int  // tokens written so far: keys and values for objects
	sensitive bool // the last key written was a sensitive one
}

type jsonWriter struct {
	r     *Redactor
	out   []byte
	stack []container
}

func (w *jsonWriter) token(tok json.Token) {
	if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
		w.stack = w.stack[:len(w.stack)-1]
		w.out = append(w.out, byte(d))
		w.afterValue()
		return
	}
	isKey := false
	sensitive := false
	if n := len(w.stack); n > 0 {
		c := &w.stack[n-1]
		isKey = c.object && c.n%2 == 0
		switch {
		case c.n > 0 && (isKey || !c.object):
			w.out = append(w.out, ',')
		case c.object && !isKey:
			w.out = append(w.out, ':')
			sensitive = c.sensitive
		}
	}
	switch v := tok.(type) {
	case json.Delim:
		w.out = append(w.out, byte(v))
		w.stack = append(w.stack, container{object: v == '{'})
		return // counted when it closes
	case string:
		if isKey {
			w.stack[len(w.stack)-1].sensitive = IsSensitiveKey(v)
		}
		if sensitive && v != "" {
			v = Marker
		}
		w.out = appendJSONString(w.out, w.r.String(v))
	case json.Number:
		w.out = append(w.out, v...)
	case bool:
		if v {
			w.out = append(w.out, "true"...)
		} else {
			w.out = append(w.out, "false"...)
		}
	case nil:
		w.out = append(w.out, "null"...)
	}
	if n := len(w.stack); n > 0 {
		w.stack[n-1].n++
	}
}

// afterValue counts a closed container as a value of its parent.
func (w *jsonWriter) afterValue() {
	if n := len(w.stack); n > 0 {
		w.stack[n-1].n++
	}
}

// appendJSONString appends s as a JSON string. Unlike encoding/json it does
// not escape <, > and &, so redacted text reads as it was written.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			// Valid JSON, but not valid JavaScript inside a <script>.
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

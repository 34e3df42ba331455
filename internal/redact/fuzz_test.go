package redact_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/opscontrolroom/opsd/internal/redact"
)

// FuzzString plants a secret in arbitrary text: the redacted text (and the
// redacted JSON holding it) must never contain it.
func FuzzString(f *testing.F) {
	f.Add("key=", cfgSecret, " end")
	f.Add("Authorization: Bearer ", vercelToken, "\n")
	f.Add("postgres://u:", "pa@ss/wd", "@host/db")
	f.Add("ED]abc", "ED]abc", "abc")
	f.Add("", "[REDACTED]x", "")
	f.Add("aaaa", "aaaaaa", "aaaaaaa")
	f.Fuzz(func(t *testing.T, prefix, secret, suffix string) {
		text := prefix + secret + suffix
		_ = redact.New().String(text) // shapes alone must not panic
		r := redact.New(secret)
		trimmed := strings.TrimSpace(secret)
		out := r.String(text)
		if len(trimmed) < redact.MinSecretLen || strings.Contains(redact.Marker, trimmed) {
			return // ignored by design
		}
		if strings.Contains(out, trimmed) {
			t.Fatalf("String(%q) = %q still holds %q", text, out, trimmed)
		}
		raw, err := json.Marshal(map[string]any{"m": text, text: []string{text}})
		if err != nil {
			return
		}
		red := r.JSON(raw)
		if !json.Valid(red) {
			t.Fatalf("JSON(%s) = %s is not valid", raw, red)
		}
		var backMsg map[string]any
		_ = json.Unmarshal(red, &backMsg)
		for k, v := range backMsg {
			if strings.Contains(k, trimmed) {
				t.Fatalf("JSON key %q holds %q", k, trimmed)
			}
			if s, ok := v.(string); ok && strings.Contains(s, trimmed) {
				t.Fatalf("JSON value %q holds %q", s, trimmed)
			}
			if l, ok := v.([]any); ok {
				for _, e := range l {
					if s, _ := e.(string); strings.Contains(s, trimmed) {
						t.Fatalf("JSON element %q holds %q", s, trimmed)
					}
				}
			}
		}
	})
}

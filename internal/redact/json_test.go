package redact_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/redact"
)

func TestJSON(t *testing.T) {
	t.Parallel()
	r := redact.New(cfgSecret)
	in := `{
	  "token": "plain-looking",
	  "nested": {"url": "postgres://u:pw123456@h/db", "list": ["` + ghToken + `", 1, true, false, null, 1.5e300]},
	  "Authorization": "Bearer abcdefgh12",
	  "big": 12345678901234567890,
	  "` + cfgSecret + `": "the key is the secret",
	  "html": "<a href=\"x\">&amp;</a>\u2028",
	  "escaped": "\u0067hp_abcdefghijklmnopqrstuvwxyzABCDEF0123",
	  "password": "",
	  "password_hint": "kept",
	  "empty": {}, "arr": [], "deep": [[{"a": [{}]}]]
	}`
	out := r.JSON(json.RawMessage(in))
	require.True(t, json.Valid(out), "%s", out)
	assert.NotContains(t, string(out), cfgSecret)
	assert.NotContains(t, string(out), "abcdefghijklmnopqrstuvwxyzABCDEF0123")
	assert.NotContains(t, string(out), "pw123456")
	assert.NotContains(t, string(out), "plain-looking")
	assert.Contains(t, string(out), `"big":12345678901234567890`, "numbers are kept verbatim")
	assert.Contains(t, string(out), `"deep":[[{"a":[{}]}]]`)

	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got))
	assert.Equal(t, "[REDACTED]", got["token"])
	assert.Equal(t, "[REDACTED]", got["Authorization"])
	assert.Equal(t, "the key is the secret", got["[REDACTED]"])
	assert.Equal(t, "<a href=\"x\">&amp;</a>\u2028", got["html"])
	assert.Equal(t, "[REDACTED]", got["escaped"])
	assert.Equal(t, "", got["password"], "an empty value reveals nothing")
	assert.Equal(t, "kept", got["password_hint"])
	assert.Equal(t, map[string]any{
		"url":  "postgres://u:[REDACTED]@h/db",
		"list": []any{"[REDACTED]", 1.0, true, false, nil, 1.5e300},
	}, got["nested"])
}

func TestJSONShapes(t *testing.T) {
	t.Parallel()
	r := redact.New(cfgSecret)
	tests := []struct{ name, in, want string }{
		{"string", `"key ` + cfgSecret + `"`, `"key [REDACTED]"`},
		{"array", `["a", "` + cfgSecret + `", 2]`, `["a","[REDACTED]",2]`},
		{"number", `42`, `42`},
		{"null", `null`, `null`},
		{"clean object", `{"run_id":"r1","ok":true}`, `{"run_id":"r1","ok":true}`},
		{"empty", ``, ``},
		{"nothing to redact keeps spacing", `{ "a" : [1, "x:y"] }`, `{ "a" : [1, "x:y"] }`},
		{"sensitive key with spaces", "{ \"password\" :\n \"x\" }", `{"password":"[REDACTED]"}`},
		{"sensitive key after colon in value", `{"u": "a:b", "Secret":"s"}`, `{"u":"a:b","Secret":"[REDACTED]"}`},
		{"control characters", `"a\u0001\n\t\"\\b"`, `"a\u0001\n\t\"\\b"`},
		{"invalid is redacted as text", `{"a": "` + cfgSecret, `{"a": "[REDACTED]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, string(r.JSON(json.RawMessage(tt.in))))
		})
	}
}

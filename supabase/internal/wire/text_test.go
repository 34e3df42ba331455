package wire

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTextAndJSON: what PostgreSQL's text and jsonb cannot hold becomes
// U+FFFD; everything else is passed on unchanged, byte for byte.
func TestTextAndJSON(t *testing.T) {
	t.Parallel()
	require.Equal(t, "plain ünïcode", Text("plain ünïcode"))
	require.Equal(t, "a\uFFFDb\uFFFDc", Text("a\x00b\xffc"))
	require.Nil(t, NullText(""))

	for _, c := range []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`}, // untouched
		{`{"big":12345678901234567890,"f":1.50}`, `{"big":12345678901234567890,"f":1.50}`}, // untouched, digits kept
		{`{"a":"x\u0000y"}`, `{"a":"x` + "\uFFFD" + `y"}`},
		{`{"k\u0000":[1,"\u0000"]}`, `{"k` + "\uFFFD" + `":[1,"` + "\uFFFD" + `"]}`},
		{`{"lone":"\ud800","pair":"\ud83d\ude00","n":12345678901234567890}`, `{"lone":"` + "\uFFFD" + `","n":12345678901234567890,"pair":"😀"}`},
		{`{"escaped":"\\u0000 is text"}`, `{"escaped":"\\u0000 is text"}`}, // a false alarm, same document
		{`{"a":"\u0000"} trailing`, `{"a":"\u0000"} trailing`},             // not JSON: the database refuses it
		{`null`, ``},
	} {
		got := JSON(json.RawMessage(c.in))
		if c.want == "" {
			require.Nil(t, got, c.in)
			continue
		}
		if c.in == c.want {
			require.Equal(t, c.want, string(got), "passed on byte for byte: %s", c.in)
			continue
		}
		require.JSONEq(t, c.want, string(got), c.in)
	}
}

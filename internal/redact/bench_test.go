package redact_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/opscontrolroom/opsd/internal/redact"
)

// typicalMessage is a run_events message of about 200 bytes.
const typicalMessage = "Vercel deployment dpl_8kXoQ2 for project ops-control-room (target production) " +
	"is READY after 42s; alias https://ops-control-room.vercel.app assigned, 3 checks passed, phase=verify lane=A"

func benchRedactor() *redact.Redactor {
	return redact.New(
		"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl", // service-role key
		vercelToken, ghToken, doToken, "whsec_0123456789abcdef",
	)
}

func BenchmarkString(b *testing.B) {
	r := benchRedactor()
	cases := []struct{ name, msg string }{
		{"clean", typicalMessage},
		{"configured_secret", strings.Replace(typicalMessage, "assigned", vercelToken, 1)},
		{"token_shape", strings.Replace(typicalMessage, "assigned", "Bearer abcdefgh12345678", 1)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.msg)))
			for b.Loop() {
				_ = r.String(c.msg)
			}
		})
	}
}

func BenchmarkJSON(b *testing.B) {
	r := benchRedactor()
	raw := json.RawMessage(`{"deployment":{"id":"dpl_8kXoQ2","url":"https://ops-control-room.vercel.app","state":"READY"},"checks":[{"name":"build","ok":true},{"name":"lint","ok":true}],"duration_ms":42000}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		_ = r.JSON(raw)
	}
}

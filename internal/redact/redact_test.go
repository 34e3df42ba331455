package redact_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/redact"
)

const (
	cfgSecret   = "sk_live_abcdef123456"
	ghToken     = "ghp_" + "abcdefghijklmnopqrstuvwxyzABCDEF0123" // 36 after the prefix
	jwt         = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.abc_DEF-123xyz"
	doToken     = "dop_v1_" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	vercelToken = "Ab3dE6gH9jK2mN5pQ8rS1tU4" // 24 alphanumerics: no shape of its own
)

func TestString(t *testing.T) {
	t.Parallel()
	r := redact.New(cfgSecret, "abc/def+ghi=jkl")
	tests := []struct {
		name, in, want string
	}{
		{"clean", "phase verify: deployment dpl_123 is READY", "phase verify: deployment dpl_123 is READY"},
		{"empty", "", ""},
		{"configured secret", "calling with key " + cfgSecret + " now", "calling with key [REDACTED] now"},
		{"secret twice", cfgSecret + cfgSecret + " and " + cfgSecret, "[REDACTED] and [REDACTED]"},
		{"query-escaped secret", "?k=abc%2Fdef%2Bghi%3Djkl&x=1", "?k=[REDACTED]&x=1"},
		{"github classic", "token " + ghToken + " leaked", "token [REDACTED] leaked"},
		{"github app", "ghs_" + strings.Repeat("a1", 18) + ".", "[REDACTED]."},
		{"github oauth", "gho_" + strings.Repeat("Z9", 18), "[REDACTED]"},
		{"github fine-grained", "github_pat_11ABCDEFG0123456789abc_" + strings.Repeat("x", 59), "[REDACTED]"},
		{"github too short", "ghp_short and high", "ghp_short and high"},
		{"bearer", "curl -H 'Bearer abcdefgh12345'", "curl -H 'Bearer [REDACTED]'"},
		{"bearer lower", "bearer abc.def-ghi_jkl=", "bearer [REDACTED]"},
		{"bearer in prose", "expected a Bearer token", "expected a Bearer token"},
		{"authorization header", "Authorization: Bearer abc.def-ghi", "Authorization: [REDACTED]"},
		{"authorization basic", "authorization: Basic dXNlcjpwYXNzd29yZA==\nnext line", "authorization: [REDACTED]\nnext line"},
		{"authorization json", `{"Authorization":"Bearer xyz12345"}`, `{"Authorization":"[REDACTED]"}`},
		{"authorization go map", "map[Authorization:[Bearer abcdefgh123]]", "map[Authorization:[[REDACTED]]]"},
		{"jwt", "key=" + jwt, "key=[REDACTED]"},
		{"slack", "posting with xoxb-1234567890-abcdefghij", "posting with [REDACTED]"},
		{"digitalocean", "DIGITALOCEAN_TOKEN=" + doToken, "DIGITALOCEAN_TOKEN=[REDACTED]"},
		{"supabase secret key", "sb_secret_abcdefghijklmnop", "[REDACTED]"},
		{"postgres url", "dial postgres://postgres:hunter2pw@db.x.supabase.co:5432/postgres?sslmode=require",
			"dial postgres://postgres:[REDACTED]@db.x.supabase.co:5432/postgres?sslmode=require"},
		{"postgres password with slash", "postgres://u:ab/cd@host/db", "postgres://u:[REDACTED]@host/db"},
		{"postgres password with at", "postgresql://u:p@ss@host:5432/db", "postgresql://u:[REDACTED]@host:5432/db"},
		{"postgres without password", "postgres://postgres@localhost/db", "postgres://postgres@localhost/db"},
		{"https userinfo", "git clone https://x-access-token:abcdef99@github.com/o/r.git",
			"git clone https://x-access-token:[REDACTED]@github.com/o/r.git"},
		{"url with at in path", "see https://www.npmjs.com/package/@types/node", "see https://www.npmjs.com/package/@types/node"},
		{"url with port and no userinfo", "GET https://api.vercel.com:443/v13/deployments?teamId=team_1",
			"GET https://api.vercel.com:443/v13/deployments?teamId=team_1"},
		{"apikey param", "GET /rest/v1/runs?apikey=abc123&select=*", "GET /rest/v1/runs?apikey=[REDACTED]&select=*"},
		{"access_token param", "cb?access_token=abc&token_type=bearer", "cb?access_token=[REDACTED]&token_type=bearer"},
		{"token param", "x?token=t0k3n#frag", "x?token=[REDACTED]#frag"},
		{"token suffix is not token", "mytoken=visible", "mytoken=visible"},
		{"libpq password", "host=db password=hunter2 user=x", "host=db password=[REDACTED] user=x"},
		{"uppercase param", "PASSWORD=hunter2", "PASSWORD=[REDACTED]"},
		{"empty param", "token=&x=1", "token=&x=1"},
		{"unconfigured vercel token", "using " + vercelToken, "using " + vercelToken},
		{"several kinds", "Bearer abcdefgh1234 " + ghToken + " " + cfgSecret, "Bearer [REDACTED] [REDACTED] [REDACTED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := r.String(tt.in)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, got, r.String(got), "redacting twice changes nothing")
		})
	}
}

func TestConfiguredOnly(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "vercel "+vercelToken, redact.New().String("vercel "+vercelToken))
	assert.Equal(t, "vercel [REDACTED]", redact.New(vercelToken).String("vercel "+vercelToken))
}

func TestIgnoredSecrets(t *testing.T) {
	t.Parallel()
	// Empty, short, whitespace-only and Marker-part values would mangle text.
	r := redact.New("", "abc", "12345", "      ", "REDACTED", "EDACT")
	for _, s := range []string{"abc 12345", "id 12345 of abc", "[REDACTED] stays"} {
		assert.Equal(t, s, r.String(s))
	}
	// Surrounding whitespace (as in an env file) is not part of the secret.
	assert.Equal(t, "k=[REDACTED]", redact.New(" abcdef\n").String("k=abcdef"))
}

func TestAdd(t *testing.T) {
	t.Parallel()
	r := redact.New()
	assert.Equal(t, "x "+vercelToken, r.String("x "+vercelToken))
	r.Add(vercelToken)
	assert.Equal(t, "x [REDACTED]", r.String("x "+vercelToken))
	r.Add(vercelToken) // a duplicate is harmless
	assert.Equal(t, "x [REDACTED]", r.String("x "+vercelToken))
}

func TestOverlappingSecrets(t *testing.T) {
	t.Parallel()
	r := redact.New("abcdef", "defghi", "abcdefghijkl")
	assert.Equal(t, "[REDACTED]", r.String("abcdefghi"))
	assert.Equal(t, "x[REDACTED]y", r.String("xabcdefghijkly"))
	assert.Equal(t, "[REDACTED] [REDACTED]", r.String("defghi abcdef"))
}

func TestSecretThatReformsAroundMarker(t *testing.T) {
	t.Parallel()
	// "ED]abc" reappears in "[REDACTED]abc" after the first pass.
	r := redact.New("ED]abc")
	got := r.String("ED]abcabc")
	assert.NotContains(t, got, "ED]abc")
	assert.NotContains(t, r.String(strings.Repeat("ED]abc", 20)), "ED]abc")
}

func TestNilRedactor(t *testing.T) {
	t.Parallel()
	var r *redact.Redactor
	assert.Equal(t, "[REDACTED]", r.String(ghToken))
	assert.Equal(t, "plain", r.String("plain"))
	var zero redact.Redactor
	assert.Equal(t, "[REDACTED]", zero.String(jwt))
}

func TestError(t *testing.T) {
	t.Parallel()
	r := redact.New(cfgSecret)
	assert.Empty(t, r.Error(nil))
	err := fmt.Errorf("vercel deploy: %w", errors.New("401 for key "+cfgSecret))
	assert.Equal(t, "vercel deploy: 401 for key [REDACTED]", r.Error(err))
}

func TestNoAllocationWhenClean(t *testing.T) {
	r := redact.New(cfgSecret, vercelToken, "another-secret-1", "another-secret-2", "another-secret-3")
	msg := typicalMessage
	allocs := testing.AllocsPerRun(100, func() { _ = r.String(msg) })
	assert.Zero(t, allocs)
}

func TestConcurrentAdd(t *testing.T) {
	t.Parallel()
	r := redact.New()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r.Add(fmt.Sprintf("secret-number-%d", i))
		}()
		go func() {
			defer wg.Done()
			for range 100 {
				_ = r.String("secret-number-0 secret-number-1 " + ghToken)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, "[REDACTED] [REDACTED] [REDACTED] [REDACTED]",
		r.String("secret-number-0 secret-number-1 secret-number-2 secret-number-3"))
}

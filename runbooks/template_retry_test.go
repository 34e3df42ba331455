package runbooks

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// TestTemplateRetryBlock: a template's `retry:` block is checked when the
// template is parsed, naming the field and the value.
func TestTemplateRetryBlock(t *testing.T) {
	t.Parallel()
	tools := newTools(&clients{})
	const steps = "steps:\n  - {id: a, kind: system, action: noop}\n"
	cases := []struct {
		retry string
		want  executor.RetryPolicy
		err   string
	}{
		{"", executor.RetryPolicy{}, ""},
		{"retry: {max_attempts: 3, backoff: 5s}\n", executor.RetryPolicy{MaxAttempts: 3, Backoff: 5 * time.Second}, ""},
		{"retry: {max_attempts: 2}\n", executor.RetryPolicy{MaxAttempts: 2, Backoff: 30 * time.Second}, ""},
		{"retry: {max_attempts: 0}\n", executor.RetryPolicy{}, "retry.max_attempts = 0: must be between 1 and 10"},
		{"retry: {max_attempts: 11}\n", executor.RetryPolicy{}, "retry.max_attempts = 11: must be between 1 and 10"},
		{"retry: {max_attempts: 2, backoff: 10ms}\n", executor.RetryPolicy{}, `retry.backoff = "10ms": must be a duration between 1s and 24h`},
		{"retry: {max_attempts: 2, backoff: soon}\n", executor.RetryPolicy{}, `retry.backoff = "soon"`},
		{"retry: {max_attempts: 2, delay: 5s}\n", executor.RetryPolicy{}, "field delay not found"},
	}
	for _, c := range cases {
		tpl, err := ParseTemplate("version: 1\n"+c.retry+steps, tools.Has)
		if c.err != "" {
			require.ErrorContains(t, err, c.err, c.retry)
			continue
		}
		require.NoError(t, err, c.retry)
		got, ok := tpl.RetryPolicy()
		require.Equal(t, c.retry != "", ok, c.retry)
		require.Equal(t, c.want, got, c.retry)
	}
}

// TestTemplateRetry: a template whose `retry:` block allows two attempts is
// retried after a preflight failure (no `retries:` configuration is set),
// and its claim event counts the template's attempts; the same template
// without the block fails on its first attempt.
func TestTemplateRetry(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // the first check fails, the next passes
		}
	}))
	t.Cleanup(site.Close)
	const body = "inputs:\n  - {key: site, type: string, required: true}\n" +
		"steps:\n  - {id: site, kind: tool, tool: http, action: check, phase: preflight, args: {url: \"{{inputs.site}}\"}}\n"

	w := newWorld(t)
	w.start()
	retried := w.submitTemplate(w.template("retried", "version: 1\nretry: {max_attempts: 2, backoff: 1s}\n"+body), `{"site":"`+site.URL+`/up"}`)
	w.expect(retried, "success", "")
	var attempt int
	require.NoError(t, w.db.Pool.QueryRow(t.Context(), `SELECT attempt FROM runs WHERE id = $1`, retried).Scan(&attempt))
	require.Equal(t, 2, attempt)
	require.True(t, w.hasEvent(retried, "(attempt 1 of 2)"), "the claim event counts the template's attempts")
	require.True(t, w.hasEvent(retried, "attempt 1 of 2 failed in phase preflight before any action"))
	require.True(t, w.hasEvent(retried, "retrying in 1s"))

	calls.Store(0)
	once := w.submitTemplate(w.template("once", "version: 1\n"+body), `{"site":"`+site.URL+`/up"}`)
	w.expect(once, "error", "preflight failed")
	require.NoError(t, w.db.Pool.QueryRow(t.Context(), `SELECT attempt FROM runs WHERE id = $1`, once).Scan(&attempt))
	require.Equal(t, 1, attempt)
}

package adapters

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/backoff"
)

func TestProviderLimit(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	unix := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	tests := []struct {
		name    string
		adapter string
		status  int
		header  map[string]string
		body    string
		want    Limit
	}{
		{"github primary 403", "github", 403, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": unix(10 * time.Minute)},
			`{"message":"API rate limit exceeded for user ID 1."}`, Limit{RateLimited: true, Wait: 10 * time.Minute}},
		{"github primary 429", "github", 429, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": unix(time.Minute)},
			`{"message":"API rate limit exceeded"}`, Limit{RateLimited: true, Wait: time.Minute}},
		{"github secondary with retry-after", "github", 403, map[string]string{"Retry-After": "30", "X-RateLimit-Remaining": "4000", "X-RateLimit-Reset": unix(time.Hour)},
			`{"message":"You have exceeded a secondary rate limit."}`, Limit{RateLimited: true, Secondary: true, Wait: 30 * time.Second}},
		{"github secondary, quota left: at least a minute, not the quota's reset", "github", 403, map[string]string{"X-RateLimit-Remaining": "4000", "X-RateLimit-Reset": unix(time.Hour)},
			`{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`, Limit{RateLimited: true, Secondary: true, Wait: time.Minute}},
		{"github secondary, quota spent: its reset", "github", 403, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": unix(5 * time.Minute)},
			`{"message":"You have exceeded a secondary rate limit."}`, Limit{RateLimited: true, Secondary: true, Wait: 5 * time.Minute}},
		{"github bare 429", "github", 429, nil, `{}`, Limit{RateLimited: true, Secondary: true, Wait: time.Minute}},
		{"github 403 refusal", "github", 403, map[string]string{"X-RateLimit-Remaining": "4999"},
			`{"message":"Resource not accessible by integration"}`, Limit{}},
		{"vercel headers", "vercel", 429, map[string]string{"X-RateLimit-Reset": unix(20 * time.Second)}, `{}`, Limit{RateLimited: true, Wait: 20 * time.Second}},
		{"vercel body reset only", "vercel", 429, nil,
			`{"error":{"code":"rate_limited","message":"Rate limit exceeded","limit":{"remaining":0,"reset":` + unix(45*time.Second) + `,"total":100}}}`,
			Limit{RateLimited: true, Wait: 45 * time.Second}},
		{"vercel body resetMs", "vercel", 429, nil,
			`{"error":{"code":"rate_limited","limit":{"remaining":0,"resetMs":` + strconv.FormatInt(now.Add(1500*time.Millisecond).UnixMilli(), 10) + `}}}`,
			Limit{RateLimited: true, Wait: 1500 * time.Millisecond}},
		{"vercel 429 that says nothing", "vercel", 429, nil, `not json`, Limit{RateLimited: true}},
		{"vercel 403 is a refusal", "vercel", 403, nil, `{"error":{"code":"forbidden"}}`, Limit{}},
		{"digitalocean ratelimit-reset", "digitalocean", 429, map[string]string{"RateLimit-Reset": unix(40 * time.Second)},
			`{"id":"too_many_requests","message":"API Rate limit exceeded."}`, Limit{RateLimited: true, Wait: 40 * time.Second}},
		{"digitalocean retry-after", "digitalocean", 429, map[string]string{"Retry-After": "3"}, `{}`, Limit{RateLimited: true, Wait: 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
			for k, v := range tt.header {
				resp.Header.Set(k, v)
			}
			assert.Equal(t, tt.want, ProviderLimit(tt.adapter, resp, []byte(tt.body), now))
		})
	}
	assert.Equal(t, Limit{}, ProviderLimit("github", nil, nil, now))
}

func TestPolicyPause(t *testing.T) {
	t.Parallel()
	p := Policy{Backoff: backoff.Policy{Min: time.Millisecond, Max: 2 * time.Millisecond}}
	limited := &APIError{Adapter: "github", Status: 429, RetryAfter: 50 * time.Millisecond}

	t.Run("waits the provider's time", func(t *testing.T) {
		t.Parallel()
		start := time.Now()
		require.NoError(t, p.Pause(context.Background(), 1, limited))
		assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	})
	t.Run("backoff when the provider names no time", func(t *testing.T) {
		t.Parallel()
		require.NoError(t, p.Pause(context.Background(), 1, &APIError{Status: 502}))
	})
	t.Run("permanent errors are returned as they are", func(t *testing.T) {
		t.Parallel()
		perm := &APIError{Status: 404}
		assert.Same(t, perm, p.Pause(context.Background(), 1, perm))
	})
	t.Run("a wait past the deadline fails at once", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		err := p.Pause(ctx, 1, &APIError{Adapter: "github", Status: 429, RetryAfter: time.Hour, Message: "API rate limit exceeded"})
		var tl *WaitTooLongError
		require.ErrorAs(t, err, &tl)
		assert.True(t, tl.Deadline)
		assert.Contains(t, err.Error(), "API rate limit exceeded")
		assert.Contains(t, err.Error(), "wait 1h0m0s, past this phase's deadline")
	})
	t.Run("a wait over MaxWait fails at once", func(t *testing.T) {
		t.Parallel()
		q := p
		q.MaxWait = 10 * time.Millisecond
		err := q.Pause(context.Background(), 1, limited)
		var tl *WaitTooLongError
		require.ErrorAs(t, err, &tl)
		assert.False(t, tl.Deadline)
		assert.True(t, errors.Is(err, limited))
	})
	t.Run("cancel while waiting", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := p.Pause(ctx, 1, &APIError{Status: 429, RetryAfter: time.Minute})
		require.ErrorIs(t, err, context.Canceled)
	})
}

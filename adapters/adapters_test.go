package adapters

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRecorderFromDefault(t *testing.T) {
	t.Parallel()
	r := RecorderFrom(context.Background())
	require.NotNil(t, r)
	r.RecordCall(context.Background(), Call{}) // no-op, no panic

	var got []Call
	ctx := WithRecorder(context.Background(), RecorderFunc(func(_ context.Context, c Call) { got = append(got, c) }))
	RecorderFrom(ctx).RecordCall(ctx, Call{Adapter: "x", Attempt: 1})
	require.Len(t, got, 1)
	assert.Equal(t, "x", got[0].Adapter)

	// A nil Recorder stored in the context still yields a usable one.
	require.NotNil(t, RecorderFrom(WithRecorder(context.Background(), nil)))
}

func TestOptionsWithDefaults(t *testing.T) {
	t.Parallel()
	o := Options{}.WithDefaults()
	assert.Equal(t, DefaultTimeout, o.Timeout)
	assert.Equal(t, DefaultMaxRetries, o.MaxRetries)
	assert.Equal(t, DefaultMinBackoff, o.MinBackoff)
	assert.Equal(t, DefaultMaxBackoff, o.MaxBackoff)
	assert.Equal(t, -1, Options{MaxRetries: -1}.WithDefaults().MaxRetries)
	assert.Equal(t, time.Second, Options{MinBackoff: time.Second, MaxBackoff: time.Millisecond}.WithDefaults().MaxBackoff)
}

func TestAPIError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       *APIError
		want      string
		temporary bool
		notFound  bool
	}{
		{
			name:     "not found with code",
			err:      &APIError{Adapter: "vercel", Method: "GET", Path: "/v13/deployments/x", Status: 404, Code: "not_found", Message: "Deployment not found"},
			want:     "vercel: GET /v13/deployments/x: 404 not_found: Deployment not found",
			notFound: true,
		},
		{
			name:      "rate limited",
			err:       &APIError{Adapter: "do", Method: "GET", Path: "/v2/droplets", Status: 429, RetryAfter: 2 * time.Second},
			want:      "do: GET /v2/droplets: 429 Too Many Requests (retry after 2s)",
			temporary: true,
		},
		{
			name:      "server error",
			err:       &APIError{Adapter: "gh", Method: "POST", Path: "/x", Status: 502, Message: "bad gateway"},
			want:      "gh: POST /x: 502: bad gateway",
			temporary: true,
		},
		{
			name: "forbidden",
			err:  &APIError{Adapter: "gh", Method: "GET", Path: "/x", Status: 403, Code: "forbidden"},
			want: "gh: GET /x: 403 forbidden Forbidden",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, tt.err.Error())
			assert.Equal(t, tt.temporary, tt.err.Temporary())
			wrapped := fmt.Errorf("deploy: %w", tt.err)
			assert.Equal(t, tt.notFound, IsNotFound(wrapped))
			assert.Equal(t, tt.temporary, IsTemporary(wrapped))
		})
	}
	assert.False(t, IsNotFound(errors.New("404")))
	assert.False(t, IsNotFound(nil))
	assert.True(t, errors.Is(fmt.Errorf("vercel: %w: set VERCEL_TOKEN", ErrNotConfigured), ErrNotConfigured))
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "7"}, 7 * time.Second},
		{"zero", map[string]string{"Retry-After": "0"}, 0},
		{"negative", map[string]string{"Retry-After": "-3"}, 0},
		{"http date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"http date in the past", map[string]string{"Retry-After": now.Add(-time.Hour).Format(http.TimeFormat)}, 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0},
		{"unix reset", map[string]string{"X-RateLimit-Reset": fmt.Sprint(now.Add(42 * time.Second).Unix())}, 42 * time.Second},
		{"delta reset", map[string]string{"RateLimit-Reset": "5"}, 5 * time.Second},
		{"retry-after wins over reset", map[string]string{"Retry-After": "1", "RateLimit-Reset": "50"}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			assert.Equal(t, tt.want, RetryAfter(h, now))
		})
	}
}

func TestNewAPIError(t *testing.T) {
	t.Parallel()
	req, err := http.NewRequest(http.MethodPost, "https://api.example.com/v13/deployments?teamId=t&x=secret", nil)
	require.NoError(t, err)
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"12"}}, Request: req}
	e := NewAPIError("vercel", resp, "rate_limited", "slow down")
	assert.Equal(t, &APIError{Adapter: "vercel", Method: "POST", Path: "/v13/deployments", Status: 429, Code: "rate_limited", Message: "slow down", RetryAfter: 12 * time.Second}, e)

	// A reset header on an ordinary error is not a request to wait.
	resp = &http.Response{StatusCode: 404, Header: http.Header{"X-Ratelimit-Reset": {"5"}}, Request: req}
	assert.Zero(t, NewAPIError("vercel", resp, "", "").RetryAfter)
}

func TestRetryAfterHugeValueDoesNotOverflow(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After", "9227000000")
	if got := RetryAfter(h, time.Now()); got != 24*time.Hour {
		t.Fatalf("RetryAfter(9227000000) = %s, want the 24h cap", got)
	}
}

package adapters

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// callLog is a Recorder that keeps every call and signals each one.
type callLog struct {
	mu    sync.Mutex
	calls []Call
	ch    chan Call
}

func newCallLog() *callLog { return &callLog{ch: make(chan Call, 64)} }

func (l *callLog) RecordCall(_ context.Context, c Call) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.mu.Unlock()
	l.ch <- c
}

func (l *callLog) all() []Call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Call(nil), l.calls...)
}

func (l *callLog) statuses() []int {
	var s []int
	for _, c := range l.all() {
		s = append(s, c.Status)
	}
	return s
}

// fastOpts retries quickly so tests do not wait on real backoff.
func fastOpts() Options {
	return Options{Timeout: 5 * time.Second, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
}

// sequence answers the n-th request with statuses[n] (the last one repeats) and
// counts requests.
func sequence(t *testing.T, statuses ...int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		w.WriteHeader(statuses[min(i, len(statuses)-1)])
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func do(t *testing.T, c *http.Client, ctx context.Context, method, url string, body io.Reader) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	require.NoError(t, err)
	resp, err := c.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	return resp, err
}

func TestTransportRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		method     string
		idempotent bool
		maxRetries int
		statuses   []int
		wantCalls  []int // statuses seen by the recorder
	}{
		{"503 then success", http.MethodGet, false, 0, []int{503, 200}, []int{503, 200}},
		{"429 then success", http.MethodGet, false, 0, []int{429, 200}, []int{429, 200}},
		{"502 and 504 on DELETE", http.MethodDelete, false, 0, []int{502, 504, 204}, []int{502, 504, 204}},
		{"exhausted returns last response", http.MethodGet, false, 2, []int{500}, []int{500, 500, 500}},
		{"negative disables retries", http.MethodGet, false, -1, []int{503, 200}, []int{503}},
		{"no retry on POST", http.MethodPost, false, 0, []int{503, 200}, []int{503}},
		{"POST retried when idempotent", http.MethodPost, true, 0, []int{503, 201}, []int{503, 201}},
		{"no retry on 400", http.MethodGet, false, 0, []int{400, 200}, []int{400}},
		{"no retry on 404", http.MethodPut, false, 0, []int{404, 200}, []int{404}},
		{"no retry on 501", http.MethodGet, false, 0, []int{501, 200}, []int{501}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := sequence(t, tt.statuses...)
			o := fastOpts()
			o.MaxRetries = tt.maxRetries
			log := newCallLog()
			ctx := WithRecorder(context.Background(), log)
			if tt.idempotent {
				ctx = Idempotent(ctx)
			}
			resp, err := do(t, NewHTTPClient("test", o), ctx, tt.method, srv.URL+"/v1/thing", strings.NewReader(`{}`))
			require.NoError(t, err)
			assert.Equal(t, tt.wantCalls[len(tt.wantCalls)-1], resp.StatusCode)
			assert.Equal(t, tt.wantCalls, log.statuses())
			for i, c := range log.all() {
				assert.Equal(t, i+1, c.Attempt)
				assert.Equal(t, "test", c.Adapter)
				assert.Equal(t, tt.method, c.Method)
				assert.NoError(t, c.Err)
			}
		})
	}
}

func TestTransportReplaysBody(t *testing.T) {
	t.Parallel()
	var bodies []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		n := len(bodies)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)
	resp, err := do(t, NewHTTPClient("test", fastOpts()), Idempotent(context.Background()), http.MethodPost, srv.URL, strings.NewReader(`{"name":"x"}`))
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
	assert.Equal(t, []string{`{"name":"x"}`, `{"name":"x"}`}, bodies)
}

func TestTransportRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value func() string
	}{
		{"seconds", func() string { return "1" }},
		// HTTP-dates have one-second resolution: 2s ahead is at least 1s away.
		{"http date", func() string { return time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					w.Header().Set("Retry-After", tt.value())
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				w.WriteHeader(http.StatusOK)
			}))
			t.Cleanup(srv.Close)
			// Backoff alone would wait ~1ms; Retry-After (within MaxBackoff) must win.
			o := fastOpts()
			o.MaxBackoff = 5 * time.Second
			start := time.Now()
			resp, err := do(t, NewHTTPClient("test", o), context.Background(), http.MethodGet, srv.URL, nil)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)
			assert.Equal(t, int32(2), n.Load())
		})
	}
}

func TestTransportBackoffBounds(t *testing.T) {
	t.Parallel()
	tr := &retryTransport{opts: Options{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.WithDefaults(), now: time.Now}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 20 {
			d := tr.backoff(n, nil)
			assert.GreaterOrEqual(t, d, want/2, "attempt %d", n)
			assert.LessOrEqual(t, d, want, "attempt %d", n)
		}
	}
	resp := &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {"3600"}}}
	assert.Equal(t, time.Second, tr.backoff(1, resp), "a 503's Retry-After is capped at MaxBackoff")
}

// A rate limit that asks for longer than an inline retry may wait is handed
// to the caller at once (its body intact), not retried early.
func TestTransportLongRateLimitHandedToCaller(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":"slow down"}`))
	}))
	t.Cleanup(srv.Close)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL, nil)
	require.NoError(t, err)
	resp, err := NewHTTPClient("test", fastOpts()).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, int32(1), n.Load())
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.JSONEq(t, `{"error":"slow down"}`, string(body), "the peeked body is given back")
}

func TestTransportPerAttemptTimeout(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // slow: never answers the first attempt
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	o := fastOpts()
	o.Timeout = 200 * time.Millisecond
	log := newCallLog()
	ctx := WithRecorder(context.Background(), log)

	resp, err := do(t, NewHTTPClient("test", o), ctx, http.MethodGet, srv.URL+"/slow", nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	calls := log.all()
	require.Len(t, calls, 2)
	assert.ErrorIs(t, calls[0].Err, context.DeadlineExceeded)
	assert.Equal(t, 0, calls[0].Status)
	assert.Equal(t, 200, calls[1].Status)

	// Without retries the timeout is the caller's error.
	n.Store(0)
	o.MaxRetries = -1
	_, err = do(t, NewHTTPClient("test", o), ctx, http.MethodGet, srv.URL+"/slow", nil)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestTransportNetworkErrorRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens: connection refused

	log := newCallLog()
	o := fastOpts()
	o.MaxRetries = 2
	_, err = do(t, NewHTTPClient("test", o), WithRecorder(context.Background(), log), http.MethodGet, "http://"+addr+"/x?token=secret", nil)
	require.Error(t, err)
	calls := log.all()
	require.Len(t, calls, 3)
	for _, c := range calls {
		require.Error(t, c.Err)
		assert.Equal(t, 0, c.Status)
		assert.NotContains(t, c.Err.Error(), "secret")
	}
}

func TestTransportCancel(t *testing.T) {
	t.Parallel()
	t.Run("while waiting to retry", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "60")
			w.WriteHeader(http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		o := fastOpts()
		o.MaxBackoff = time.Minute
		log := newCallLog()
		ctx, cancel := context.WithCancel(WithRecorder(context.Background(), log))
		defer cancel()
		// log.ch: the first attempt is answered; the transport now waits 60s.
		cancelOnceReady(t, NewHTTPClient("test", o), ctx, cancel, srv.URL, log.ch)
	})
	t.Run("during a slow attempt", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			<-r.Context().Done()
		}))
		t.Cleanup(srv.Close)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cancelOnceReady(t, NewHTTPClient("test", fastOpts()), ctx, cancel, srv.URL, arrived)
	})
}

// cancelOnceReady GETs url with c and ctx, calls cancel once ready yields,
// and checks that the request then returns context.Canceled promptly.
func cancelOnceReady[T any](t *testing.T, c *http.Client, ctx context.Context, cancel context.CancelFunc, url string, ready <-chan T) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := do(t, c, ctx, http.MethodGet, url, nil)
		errc <- err
	}()
	<-ready
	cancel()
	select {
	case err := <-errc:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled request did not return")
	}
}

func TestTransportRecordsPathOnly(t *testing.T) {
	t.Parallel()
	srv, _ := sequence(t, 200)
	log := newCallLog()
	req, err := http.NewRequestWithContext(WithRecorder(context.Background(), log), http.MethodGet, srv.URL+"/v6/deployments?teamId=t1&token=s3cret", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := NewHTTPClient("vercel", fastOpts()).Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())

	calls := log.all()
	require.Len(t, calls, 1)
	c := calls[0]
	assert.Equal(t, "/v6/deployments", c.Path)
	assert.Equal(t, 200, c.Status)
	assert.Equal(t, 1, c.Attempt)
	assert.Positive(t, c.Duration)
	assert.NotContains(t, fmt.Sprintf("%+v", c), "s3cret")
}

func TestTransportWrapsBaseClient(t *testing.T) {
	t.Parallel()
	srv, _ := sequence(t, 200)
	var used atomic.Bool
	base := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(r)
	}), Timeout: time.Nanosecond}
	c := NewHTTPClient("test", Options{HTTPClient: base})
	resp, err := do(t, c, context.Background(), http.MethodGet, srv.URL, nil)
	require.NoError(t, err, "the base client's overall Timeout must not apply")
	assert.Equal(t, 200, resp.StatusCode)
	assert.True(t, used.Load())
	assert.Equal(t, time.Nanosecond, base.Timeout, "base client is not modified")
}

func TestTransportUnreplayableBodyNotRetried(t *testing.T) {
	t.Parallel()
	srv, n := sequence(t, 503, 200)
	req, err := http.NewRequestWithContext(Idempotent(context.Background()), http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("x")))
	require.NoError(t, err)
	require.Nil(t, req.GetBody)
	resp, err := NewHTTPClient("test", fastOpts()).Do(req)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, 503, resp.StatusCode)
	assert.Equal(t, int32(1), n.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

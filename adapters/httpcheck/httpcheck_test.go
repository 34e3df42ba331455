package httpcheck

import (
	"context"
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
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/adapters"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// server answers /ok 200, /fail 500, /empty 204, /slow after the client gives
// up, and /redirect?to=... with a 302.
func server(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte("ok"))
		case "/fail":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/slow":
			<-r.Context().Done()
		case "/redirect":
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestCheck(t *testing.T) {
	t.Parallel()
	srv, _ := server(t)
	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		expect  int
		status  int
		ok      bool
		err     string
	}{
		{"200", srv.URL + "/ok", 0, 0, 200, true, ""},
		{"expected 200", srv.URL + "/ok", 0, 200, 200, true, ""},
		{"204 is 2xx", srv.URL + "/empty", 0, 0, 204, true, ""},
		{"204 but 200 expected", srv.URL + "/empty", 0, 200, 204, false, "status 204, want 200"},
		{"500", srv.URL + "/fail", 0, 0, 500, false, "status 500, want 2xx"},
		{"500 expected", srv.URL + "/fail", 0, 500, 500, true, ""},
		{"redirect followed", srv.URL + "/redirect?to=/ok", 0, 200, 200, true, ""},
		{"slow times out", srv.URL + "/slow", 50 * time.Millisecond, 0, 0, false, "timeout after 50ms"},
		{"connection refused", "http://" + refusedAddr(t) + "/", time.Second, 0, 0, false, "refused"},
		{"invalid URL", "http://[::1", time.Second, 0, 0, false, "invalid URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := Check(context.Background(), srv.Client(), tt.url, tt.timeout, tt.expect)
			assert.Equal(t, tt.status, res.Status)
			assert.Equal(t, tt.ok, res.OK)
			if tt.err == "" {
				assert.Empty(t, res.Err)
			} else {
				assert.Contains(t, res.Err, tt.err)
			}
			if tt.status != 0 {
				assert.Positive(t, res.Latency)
			}
		})
	}
}

func TestCheckRedactsPassword(t *testing.T) {
	t.Parallel()
	srv, _ := server(t)
	res := Check(context.Background(), srv.Client(), strings.Replace(srv.URL, "http://", "http://ops:hunter2@", 1)+"/ok", time.Second, 200)
	assert.True(t, res.OK)
	assert.NotContains(t, res.URL, "hunter2")
}

func TestCheckCancelled(t *testing.T) {
	t.Parallel()
	srv, _ := server(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Check(ctx, srv.Client(), srv.URL+"/slow", time.Minute, 0)
	assert.False(t, res.OK)
	assert.Contains(t, res.Err, "context canceled")
}

func TestChecker(t *testing.T) {
	t.Parallel()
	srv, hits := server(t)
	tests := []struct {
		name    string
		allow   []string
		url     string
		ok      bool
		err     string
		reached bool
	}{
		{"loopback refused before any request", nil, srv.URL + "/ok", false, "loopback", false},
		{"metadata refused", nil, "http://169.254.169.254/latest/meta-data/", false, "cloud metadata", false},
		{"scheme refused", nil, "file:///etc/passwd", false, "scheme", false},
		{"allowlisted", []string{"127.0.0.1"}, srv.URL + "/ok", true, "", true},
		{"allowlisted, server error", []string{"127.0.0.0/8"}, srv.URL + "/fail", false, "status 500", true},
		{"redirect to a refused address", []string{"127.0.0.1"}, srv.URL + "/redirect?to=http://[::1]:9/", false, "loopback", true},
		{"redirect to metadata", []string{"127.0.0.1"}, srv.URL + "/redirect?to=http://169.254.169.254/", false, "cloud metadata", true},
	}
	var mu sync.Mutex // the hit counter is shared, so these cases run in turn
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			defer mu.Unlock()
			c := NewChecker(adapters.URLPolicy{Allow: tt.allow}, time.Second)
			defer c.Close()
			before := hits.Load()
			res := c.Check(context.Background(), tt.url, 0)
			assert.Equal(t, tt.ok, res.OK, res.Err)
			if tt.err != "" {
				assert.Contains(t, res.Err, tt.err)
			}
			assert.Equal(t, tt.reached, hits.Load() > before)
		})
	}
}

func TestCheckerRecordsCall(t *testing.T) {
	t.Parallel()
	srv, _ := server(t)
	c := NewChecker(adapters.URLPolicy{Allow: []string{"127.0.0.1"}}, time.Second)
	defer c.Close()
	var calls []adapters.Call
	ctx := adapters.WithRecorder(context.Background(), adapters.RecorderFunc(func(_ context.Context, call adapters.Call) {
		calls = append(calls, call)
	}))
	res := c.Check(ctx, srv.URL+"/fail?token=secret", 0)
	require.False(t, res.OK)
	require.Len(t, calls, 1, "health checks are never retried")
	assert.Equal(t, "httpcheck", calls[0].Adapter)
	assert.Equal(t, "/fail", calls[0].Path)
	assert.Equal(t, 500, calls[0].Status)
}

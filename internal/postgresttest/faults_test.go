package postgresttest

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawPost sends one POST on a fresh connection, so that a dropped connection
// is seen by the caller (and not retried by a pooled transport).
func rawPost(t *testing.T, s *Server, path string, body string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL+"/rest/v1/"+path, bytes.NewBufferString(body))
	require.NoError(t, err)
	req.Header.Set("apikey", s.ServiceKey())
	req.Header.Set("Content-Type", "application/json")
	tr := s.Client().Transport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func countNotes(t *testing.T, s *Server, body string) int {
	t.Helper()
	status, b, _ := call(t, s, "GET", "notes?select=id&body=eq."+body, s.ServiceKey(), nil)
	require.Equal(t, http.StatusOK, status)
	return len(jsonArray(t, b))
}

func TestFaultStatusesInOrder(t *testing.T) {
	s, _ := newServer(t)
	key := s.ServiceKey()
	s.Inject(Fault{Kind: FaultStatus, Status: 500, Path: "notes"})
	s.Inject(Fault{Kind: FaultStatus, Status: 502, Path: "notes", Body: "<html>bad gateway</html>"})
	s.Inject(Fault{Kind: FaultRateLimit, RetryAfter: 2 * time.Second, Method: "POST"})
	s.Inject(Fault{Kind: FaultStatus, Times: 2, Path: "rpc/add_them"})

	status, body, _ := call(t, s, "GET", "notes", key, nil)
	assert.Equal(t, 500, status)
	assert.Equal(t, "PGRST001", errCode(t, body))
	status, body, _ = call(t, s, "GET", "owners", key, nil)
	assert.Equal(t, 200, status, "rules match their path only")
	status, body, _ = call(t, s, "GET", "notes", key, nil)
	assert.Equal(t, 502, status)
	assert.Equal(t, "<html>bad gateway</html>", string(body))
	status, _, _ = call(t, s, "GET", "notes", key, nil)
	assert.Equal(t, 200, status, "each rule applied once")

	status, _, hdr := call(t, s, "POST", "rpc/add_them", key, map[string]int{"a": 1, "b": 1})
	assert.Equal(t, 429, status)
	assert.Equal(t, "2", hdr.Get("Retry-After"))
	for range 2 {
		status, _, _ = call(t, s, "POST", "rpc/add_them", key, map[string]int{"a": 1, "b": 1})
		assert.Equal(t, 503, status)
	}
	status, _, _ = call(t, s, "POST", "rpc/add_them", key, map[string]int{"a": 1, "b": 1})
	assert.Equal(t, 200, status)

	st := s.Stats()
	assert.EqualValues(t, 4, st.Status)
	assert.EqualValues(t, 1, st.RateLimited)
	assert.EqualValues(t, 8, st.Requests)
	assert.EqualValues(t, 3, st.Executed)
	assert.EqualValues(t, 3, st.Committed)
}

func TestFaultDropAndLoseResponse(t *testing.T) {
	s, _ := newServer(t)
	s.Inject(Fault{Kind: FaultDrop, Path: "notes"})
	_, err := rawPost(t, s, "notes", `{"body":"dropped"}`)
	require.Error(t, err, "the connection is closed without an answer")
	assert.Equal(t, 0, countNotes(t, s, "dropped"), "a dropped request is not executed")

	s.Inject(Fault{Kind: FaultLoseResponse, Path: "notes", Method: "POST"})
	_, err = rawPost(t, s, "notes", `{"body":"lost"}`)
	require.Error(t, err, "the answer is lost")
	assert.Equal(t, 1, countNotes(t, s, "lost"), "a lost response was executed and committed")

	st := s.Stats()
	assert.EqualValues(t, 1, st.Dropped)
	assert.EqualValues(t, 1, st.LostResponses)
	assert.EqualValues(t, 3, st.Committed)
}

func TestFaultLatencyAndWindows(t *testing.T) {
	s, _ := newServer(t)
	key := s.ServiceKey()
	s.Inject(Fault{Kind: FaultLatency, Delay: 150 * time.Millisecond})
	start := time.Now()
	status, _, _ := call(t, s, "GET", "notes", key, nil)
	assert.Equal(t, 200, status)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)

	// A rule with a duration applies to every request until it expires.
	s.Inject(Fault{Kind: FaultStatus, Status: 504, For: 200 * time.Millisecond})
	status, _, _ = call(t, s, "GET", "notes", key, nil)
	assert.Equal(t, 504, status)
	waitFor(t, func() bool { status, _, _ := call(t, s, "GET", "notes", key, nil); return status == 200 })

	s.Outage(200 * time.Millisecond)
	status, body, _ := call(t, s, "GET", "notes", key, nil)
	assert.Equal(t, 503, status)
	assert.Equal(t, "PGRST001", errCode(t, body))
	waitFor(t, func() bool { status, _, _ := call(t, s, "GET", "notes", key, nil); return status == 200 })
	assert.Positive(t, s.Stats().OutageRejected)

	s.Outage(time.Hour)
	s.Inject(Fault{Kind: FaultStatus, Times: 5})
	s.ClearFaults()
	status, _, _ = call(t, s, "GET", "notes", key, nil)
	assert.Equal(t, 200, status)

	s.Inject(Fault{Kind: FaultStatus, For: time.Hour, Probability: 0.5})
	failed := 0
	for range 40 {
		if status, _, _ := call(t, s, "GET", "owners", key, nil); status == 503 {
			failed++
		}
	}
	assert.True(t, failed > 0 && failed < 40, "about half of the requests fail, got %d/40", failed)
}

func TestCloseAbortsDelayedRequests(t *testing.T) {
	t.Parallel()
	dbURL, _ := scratchDB(t)
	s := New(t, dbURL, testSecret)
	s.Inject(Fault{Kind: FaultLatency, Delay: time.Hour})
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("GET", s.URL+"/rest/v1/notes", nil)
		req.Header.Set("apikey", s.ServiceKey())
		if resp, err := s.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, func() bool { return s.Stats().Delayed == 1 })
	s.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a delayed request outlived Close")
	}
}

func TestHTTP2(t *testing.T) {
	t.Parallel()
	dbURL, _ := scratchDB(t)
	s := New(t, dbURL, testSecret, WithHTTP2())
	req, err := http.NewRequestWithContext(context.Background(), "POST", s.URL+"/rest/v1/rpc/add_them",
		bytes.NewBufferString(`{"a":2,"b":3}`))
	require.NoError(t, err)
	req.Header.Set("apikey", s.ServiceKey())
	resp, err := s.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 2, resp.ProtoMajor)
	assert.EqualValues(t, 1, s.Stats().HTTP2)

	s.Inject(Fault{Kind: FaultLoseResponse})
	req, _ = http.NewRequest("POST", s.URL+"/rest/v1/rpc/touch", bytes.NewBufferString(`{"p_body":"h2"}`))
	req.Header.Set("apikey", s.ServiceKey())
	_, err = s.Client().Do(req)
	require.Error(t, err, "the stream is reset")
	assert.Equal(t, 1, countNotes(t, s, "h2"))
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package executor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// countingStore counts claim calls once they have returned, and cannot push
// wake-ups, so the daemon claims only when polled (never, with an hour-long
// poll) or woken. Counting on return matters: a claim counted when it began
// could still be on its way to the database when a test then submits a run.
type countingStore struct {
	executor.Store
	claims atomic.Int64
}

func (s *countingStore) ClaimRuns(ctx context.Context, req executor.ClaimRequest) ([]*executor.Run, error) {
	defer s.claims.Add(1)
	return s.Store.ClaimRuns(ctx, req)
}

func (s *countingStore) Wakeups(context.Context) <-chan string { return nil }

const hardeningSecret = "wake-s3cret-0123456789"

// hardenedServer is a daemon that claims only when /v1/wake wakes it,
// served by executor.NewHTTPServer on a real listener. tune may shorten the
// server's timeouts before it starts.
type hardenedServer struct {
	url    string
	addr   string
	store  *countingStore
	env    *env
	srv    *http.Server
	daemon *executor.Daemon
}

func startHardenedServer(t *testing.T, tune func(*http.Server)) *hardenedServer {
	t.Helper()
	e := newEnv(t)
	cs := &countingStore{Store: e.store}
	cfg := fastConfig("")
	cfg.Lanes = []string{"A"}
	cfg.PollInterval, cfg.PollMaxInterval = time.Hour, time.Hour
	d := startDaemonOn(t, cs, cfg, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := executor.NewHTTPServer(ln.Addr().String(), d.Handler(executor.HTTPConfig{WebhookSecret: hardeningSecret}))
	if tune != nil {
		tune(srv)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
		require.ErrorIs(t, <-served, http.ErrServerClosed)
	})
	// The claim loop's first pass happens at start; wait for it, so that
	// every later claim is a wake-up's.
	waitFor(t, 5*time.Second, "the first claim pass", func() bool { return cs.claims.Load() >= 1 })
	return &hardenedServer{url: "http://" + ln.Addr().String(), addr: ln.Addr().String(), store: cs, env: e, srv: srv, daemon: d}
}

// do sends one request on a fresh connection and returns the status and body.
func (h *hardenedServer) do(t *testing.T, method, path, auth string, body io.Reader, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, body)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wakeups is how many /v1/wake requests the daemon accepted
// (opsd_webhook_wakeups_total).
func (h *hardenedServer) wakeups(t *testing.T) float64 {
	t.Helper()
	families, err := h.daemon.Metrics().Registry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "opsd_webhook_wakeups_total" {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no opsd_webhook_wakeups_total")
	return 0
}

// assertServing: no request so far woke the daemon, /healthz answers, and
// a good wake-up makes the daemon claim the queued run. The handler counts
// and signals a wake-up before it answers, so once every earlier request
// was answered, a count of zero means no claim can be on its way: nothing
// needs waiting for.
func (h *hardenedServer) assertServing(t *testing.T, claimsBefore int64, queued string) {
	t.Helper()
	require.Zero(t, h.wakeups(t), "a refused request woke the daemon")
	code, _ := h.do(t, http.MethodGet, "/healthz", "", nil, nil)
	require.Equal(t, http.StatusOK, code)
	status, _ := runRow(t, h.env.db.Pool, queued)
	require.Equal(t, executor.StatusQueued, status, "a refused request must not make the daemon claim")
	require.Equal(t, claimsBefore, h.store.claims.Load(), "a refused request must not wake the claimer")
	code, _ = h.do(t, http.MethodPost, "/v1/wake", "Bearer "+hardeningSecret, strings.NewReader(`{"type":"INSERT","table":"runs","record":{"lane":"A"}}`), nil)
	require.Equal(t, http.StatusAccepted, code)
	require.Equal(t, 1.0, h.wakeups(t), "the good wake-up is counted")
	waitStatus(t, h.env.db.Pool, queued, 10*time.Second, executor.StatusSuccess)
}

// TestWakeHardening: every hostile or malformed request to /v1/wake is
// answered with the right status, never wakes the claimer, and leaves the
// daemon serving.
func TestWakeHardening(t *testing.T) {
	t.Parallel()
	h := startHardenedServer(t, nil)
	queued := h.env.submit(h.env.template("noop", noopTemplate), nil, "A", 100, "")
	before := h.store.claims.Load()
	good := "Bearer " + hardeningSecret
	jsonType := http.Header{"Content-Type": {"application/json"}}

	cases := []struct {
		name   string
		method string
		path   string
		auth   string
		body   string
		header http.Header
		want   int
	}{
		// methods
		{"GET wake", http.MethodGet, "/v1/wake", good, "", nil, 405},
		{"PUT wake", http.MethodPut, "/v1/wake", good, "{}", jsonType, 405},
		{"DELETE wake", http.MethodDelete, "/v1/wake", good, "", nil, 405},
		{"PATCH wake", http.MethodPatch, "/v1/wake", good, "{}", jsonType, 405},
		{"OPTIONS wake", http.MethodOptions, "/v1/wake", good, "", nil, 405},
		{"HEAD wake", http.MethodHead, "/v1/wake", good, "", nil, 405},
		{"made-up method", "BREW", "/v1/wake", good, "{}", nil, 405},
		{"POST healthz", http.MethodPost, "/healthz", good, "{}", nil, 405},
		{"DELETE metrics", http.MethodDelete, "/metrics", "", "", nil, 405},
		{"unknown path", http.MethodPost, "/v1/wake/extra", good, "{}", nil, 404},
		{"unknown root", http.MethodGet, "/admin", "", "", nil, 404},
		// authentication
		{"no Authorization", http.MethodPost, "/v1/wake", "", "{}", jsonType, 401},
		{"empty bearer", http.MethodPost, "/v1/wake", "Bearer ", "{}", jsonType, 401},
		{"wrong secret", http.MethodPost, "/v1/wake", "Bearer wrong", "{}", jsonType, 401},
		{"secret prefix", http.MethodPost, "/v1/wake", good[:len(good)-1], "{}", jsonType, 401},
		{"secret plus a byte", http.MethodPost, "/v1/wake", good + "x", "{}", jsonType, 401},
		{"secret without scheme", http.MethodPost, "/v1/wake", hardeningSecret, "{}", jsonType, 401},
		{"Basic scheme", http.MethodPost, "/v1/wake", "Basic " + hardeningSecret, "{}", jsonType, 401},
		{"secret in a query", http.MethodPost, "/v1/wake?secret=" + hardeningSecret, "", "{}", jsonType, 401},
		{"unauthenticated huge body", http.MethodPost, "/v1/wake", "Bearer nope", strings.Repeat("x", 2*executor.MaxWakeBody), jsonType, 401},
		// bodies
		{"not JSON", http.MethodPost, "/v1/wake", good, "{not json", jsonType, 400},
		{"truncated JSON", http.MethodPost, "/v1/wake", good, `{"record":{"lane":"A"`, jsonType, 400},
		{"wrong record type", http.MethodPost, "/v1/wake", good, `{"record":7}`, jsonType, 400},
		{"wrong lane type", http.MethodPost, "/v1/wake", good, `{"record":{"lane":["A"]}}`, jsonType, 400},
		{"array", http.MethodPost, "/v1/wake", good, `[1,2,3]`, jsonType, 400},
		{"other table", http.MethodPost, "/v1/wake", good, `{"type":"INSERT","table":"sessions","record":{"lane":"A"}}`, jsonType, 400},
		{"binary", http.MethodPost, "/v1/wake", good, "\x00\xff\xfe{", nil, 400},
	}
	for _, c := range cases {
		var body io.Reader
		if c.body != "" {
			body = strings.NewReader(c.body)
		}
		code, resp := h.do(t, c.method, c.path, c.auth, body, c.header)
		require.Equal(t, c.want, code, "%s: %s", c.name, resp)
		if c.want == 401 {
			require.NotContains(t, resp, hardeningSecret, "%s: the answer echoes the secret", c.name)
		}
	}
	// (A body over the read limit is a wake-up, accepted: TestWebhookWakeLongRow.)
	// Headers over MaxHeaderBytes are refused by the server itself.
	code, _ := h.do(t, http.MethodPost, "/v1/wake", good, strings.NewReader("{}"),
		http.Header{"X-Pad": {strings.Repeat("p", 64<<10)}})
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, code)

	h.assertServing(t, before, queued)
}

// TestWakeBodyAtLimit: a body of exactly MaxWakeBody bytes is accepted.
func TestWakeBodyAtLimit(t *testing.T) {
	t.Parallel()
	h := startHardenedServer(t, nil)
	pad := executor.MaxWakeBody - len(`{"pad":""}`)
	code, body := h.do(t, http.MethodPost, "/v1/wake", "Bearer "+hardeningSecret,
		strings.NewReader(`{"pad":"`+strings.Repeat("x", pad)+`"}`), nil)
	require.Equal(t, http.StatusAccepted, code, body)
}

// TestWakeFlood: hundreds of concurrent bad requests are all answered; the
// daemon keeps serving and none of them wakes the claimer.
func TestWakeFlood(t *testing.T) {
	t.Parallel()
	h := startHardenedServer(t, nil)
	queued := h.env.submit(h.env.template("noop", noopTemplate), nil, "A", 100, "")
	before := h.store.claims.Load()
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	codes := make([]int, 400)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			auth, body := "Bearer wrong-"+fmt.Sprint(i), "{}"
			if i%2 == 1 {
				auth, body = "Bearer "+hardeningSecret, "{broken"
			}
			req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/wake", strings.NewReader(body))
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, c := range codes {
		want := 401
		if i%2 == 1 {
			want = 400
		}
		require.Equal(t, want, c, "request %d", i)
	}
	h.assertServing(t, before, queued)
}

// TestHTTPServerTimeouts: NewHTTPServer sets every timeout and a header
// limit. The values are asserted as configured; the slow-client behaviour is
// then tested on a server built by the same function with its timeouts
// shortened, so the test takes a second instead of the real 5 s and 10 s.
func TestHTTPServerTimeouts(t *testing.T) {
	t.Parallel()
	srv := executor.NewHTTPServer("127.0.0.1:0", http.NotFoundHandler())
	require.Equal(t, 5*time.Second, srv.ReadHeaderTimeout)
	require.Equal(t, 10*time.Second, srv.ReadTimeout)
	require.Equal(t, 15*time.Second, srv.WriteTimeout)
	require.Equal(t, 60*time.Second, srv.IdleTimeout)
	require.Equal(t, 16<<10, srv.MaxHeaderBytes)

	const headerTimeout, readTimeout = 400 * time.Millisecond, 800 * time.Millisecond
	h := startHardenedServer(t, func(s *http.Server) {
		s.ReadHeaderTimeout, s.ReadTimeout = headerTimeout, readTimeout
	})
	queued := h.env.submit(h.env.template("noop", noopTemplate), nil, "A", 100, "")
	before := h.store.claims.Load()

	// Slowloris: many clients send their headers a byte at a time. Each is
	// cut off once ReadHeaderTimeout passes, long before it would finish.
	head := "POST /v1/wake HTTP/1.1\r\nHost: opsd\r\nAuthorization: Bearer " + hardeningSecret +
		"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
	var wg sync.WaitGroup
	results := make([]time.Duration, 20)
	errs := make([]error, len(results))
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = dripHeaders(h.addr, head, 50*time.Millisecond)
		}()
	}
	// While they drip, ordinary clients are served at once.
	code, _ := h.do(t, http.MethodGet, "/healthz", "", nil, nil)
	require.Equal(t, http.StatusOK, code)
	wg.Wait()
	for i, took := range results {
		require.NoError(t, errs[i], "slow client %d", i)
		require.GreaterOrEqual(t, took, headerTimeout-50*time.Millisecond, "slow client %d cut off too early", i)
		require.Less(t, took, headerTimeout+time.Second, "slow client %d held its connection for %s", i, took)
	}

	// A client that sends its headers at once and then the body a byte at a
	// time is cut off by ReadTimeout.
	conn, err := net.Dial("tcp", h.addr)
	require.NoError(t, err)
	defer conn.Close()
	began := time.Now()
	_, err = fmt.Fprintf(conn, "POST /v1/wake HTTP/1.1\r\nHost: opsd\r\nAuthorization: Bearer %s\r\nContent-Length: 4096\r\n\r\n", hardeningSecret)
	require.NoError(t, err)
	cut := dripUntilClosed(conn, 50*time.Millisecond, 4096)
	require.Less(t, time.Since(began), readTimeout+2*time.Second, "slow body held its connection")
	require.True(t, cut, "the server never closed the slow body's connection")

	h.assertServing(t, before, queued)
}

// dripHeaders sends head one byte per interval and returns how long the
// connection stayed open. It is an error if the server answered a request
// the client never finished.
func dripHeaders(addr, head string, interval time.Duration) (time.Duration, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	began := time.Now()
	closed := make(chan string, 1)
	go func() {
		// The server may answer 400 or 408 (Connection: close) as it
		// cuts the request off.
		b, _ := io.ReadAll(bufio.NewReader(conn))
		closed <- string(b)
	}()
	for i := 0; i < len(head); i++ {
		if _, err := conn.Write([]byte{head[i]}); err != nil {
			break
		}
		select {
		case answer := <-closed:
			return time.Since(began), answerError(answer)
		case <-time.After(interval):
		}
	}
	select {
	case answer := <-closed:
		if time.Since(began) >= time.Duration(len(head))*interval {
			return time.Since(began), errors.New("the whole request went through before the server cut it off")
		}
		return time.Since(began), answerError(answer)
	case <-time.After(5 * time.Second):
		return time.Since(began), errors.New("the server never closed the connection")
	}
}

func answerError(answer string) error {
	if answer == "" || strings.HasPrefix(answer, "HTTP/1.1 408") || strings.HasPrefix(answer, "HTTP/1.1 400") {
		return nil
	}
	return fmt.Errorf("unexpected answer to an unfinished request: %q", answer)
}

// dripUntilClosed writes n bytes one per interval until a write fails or
// the server closes; it reports whether the server closed first.
func dripUntilClosed(conn net.Conn, interval time.Duration, n int) bool {
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	for i := 0; i < n; i++ {
		if _, err := conn.Write([]byte("x")); err != nil {
			<-closed
			return true
		}
		select {
		case <-closed:
			return true
		case <-time.After(interval):
		}
	}
	return false
}

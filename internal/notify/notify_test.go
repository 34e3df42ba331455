package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
	"github.com/opscontrolroom/opsd/internal/redact"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hook is a webhook that answers the queued statuses, then 200.
type hook struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
}

func newHook(t *testing.T, statuses ...int) *hook {
	h := &hook{statuses: statuses}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, b)
		st := http.StatusOK
		if len(h.statuses) > 0 {
			st, h.statuses = h.statuses[0], h.statuses[1:]
		}
		h.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) requests() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...)
}

var fast = Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Timeout: 2 * time.Second}

var failed = executor.Notification{RunID: "r-1", Kind: "deploy", Env: "prod", Lane: "A", Intent: "ship v2", Event: "error",
	Message: "verify failed: deployment dpl_1 ended ERROR"}

func TestPayloads(t *testing.T) {
	slack, generic := newHook(t), newHook(t)
	n := New(config.Notifications{Slack: []string{slack.URL + "/services/T/B/x"}, Webhooks: []string{generic.URL + "/hook"}}, fast)
	require.NoError(t, n.Notify(context.Background(), failed))

	var s map[string]string
	require.NoError(t, json.Unmarshal(slack.requests()[0], &s))
	require.Len(t, s, 1, "Slack gets {\"text\": ...} only")
	require.Equal(t, ":x: opsd deploy run r-1 (prod, lane A) failed: ship v2 — verify failed: deployment dpl_1 ended ERROR", s["text"])

	var g map[string]any
	require.NoError(t, json.Unmarshal(generic.requests()[0], &g))
	require.Equal(t, "r-1", g["run_id"])
	require.Equal(t, "error", g["event"])
	require.Equal(t, "prod", g["env"])
	require.Contains(t, g["text"], "failed")
}

func TestEvents(t *testing.T) {
	for event, want := range map[string]string{
		"success": "succeeded", "canceled": "was canceled", "waiting_for_approval": "is waiting for approval", "error": "failed",
	} {
		n := failed
		n.Event = event
		require.Contains(t, Text(n), want)
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	h := newHook(t, 500, 503)
	n := New(config.Notifications{Webhooks: []string{h.URL}}, fast)
	require.NoError(t, n.Notify(context.Background(), failed))
	require.Len(t, h.requests(), 3, "two failures, then delivered on the third try")
}

func TestGivesUpAfterThreeTriesWithoutLeakingTheURL(t *testing.T) {
	h := newHook(t, 500, 500, 500, 500)
	n := New(config.Notifications{Slack: []string{h.URL + "/services/T000/B000/SECRETPATH"}}, fast)
	err := n.Notify(context.Background(), failed)
	require.ErrorContains(t, err, "answered 500")
	require.NotContains(t, err.Error(), "SECRETPATH")
	require.Len(t, h.requests(), 3)
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	h := newHook(t, 404)
	ok := newHook(t)
	n := New(config.Notifications{Webhooks: []string{h.URL, ok.URL}}, fast)
	err := n.Notify(context.Background(), failed)
	require.ErrorContains(t, err, "answered 404")
	require.Len(t, h.requests(), 1)
	require.Len(t, ok.requests(), 1, "one failing webhook does not stop the others")
}

func TestUnreachable(t *testing.T) {
	h := newHook(t)
	url := h.URL + "/x"
	h.Close()
	n := New(config.Notifications{Webhooks: []string{url}}, fast)
	err := n.Notify(context.Background(), failed)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "/x")
}

func TestRedactsIntent(t *testing.T) {
	h := newHook(t)
	n := New(config.Notifications{Webhooks: []string{h.URL}}, Options{Redactor: redact.New("s3cr3t-value")})
	note := failed
	note.Intent = "rotate s3cr3t-value"
	require.NoError(t, n.Notify(context.Background(), note))
	body := string(h.requests()[0])
	require.NotContains(t, body, "s3cr3t-value")
	require.True(t, strings.Contains(body, redact.Marker))
}

func TestNoneConfigured(t *testing.T) {
	require.Nil(t, New(config.Notifications{}, Options{}))
}

func TestCanceled(t *testing.T) {
	h := newHook(t, 500, 500, 500)
	n := New(config.Notifications{Webhooks: []string{h.URL}}, Options{MinBackoff: time.Hour, MaxBackoff: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	require.Error(t, n.Notify(ctx, failed))
	require.Less(t, time.Since(start), 10*time.Second)
}

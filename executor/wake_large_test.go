package executor_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
)

// TestWebhookWakeLongRow: a Database Webhook for a runs row with a long
// intent (over the read limit, lane after it) still wakes the daemon at once.
func TestWebhookWakeLongRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tpl := e.template("noop", noopTemplate)
	cfg := fastConfig("")
	cfg.PollInterval, cfg.PollMaxInterval = time.Hour, time.Hour
	store := &noPush{Store: e.store}
	d := startDaemonOn(t, store, cfg, nil)
	srv := newHTTPTestServer(t, d.Handler(executor.HTTPConfig{WebhookSecret: "s3cret-wake"}))

	waitFor(t, 5*time.Second, "the first poll of each lane", func() bool { return store.claims.Load() >= 4 })
	id := e.submit(tpl, nil, "D", 100, "")
	intent := strings.Repeat("deploy the thing, carefully; ", 4*executor.MaxWakeBody/29)
	body := fmt.Sprintf(`{"type":"INSERT","table":"runs","schema":"public","record":{"id":%q,"intent":%q,"lane":"D"},"old_record":null}`, id, intent)
	require.Greater(t, len(body), 4*executor.MaxWakeBody-100)
	require.Equal(t, 202, postWake(t, srv, "Bearer s3cret-wake", body))
	status, _ := waitStatus(t, e.db.Pool, id, 5*time.Second, "success")
	require.Equal(t, "success", status)
}

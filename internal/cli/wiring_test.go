package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/internal/config"
	"github.com/opscontrolroom/opsd/internal/redact"
	"github.com/opscontrolroom/opsd/runbooks"
)

func TestWiring(t *testing.T) {
	e := &env{cfg: &config.Config{SupabaseURL: "https://x.supabase.co"}, log: zap.NewNop(), redactor: redact.New()}
	r, err := newResolver(e, nil)
	require.NoError(t, err)
	rb := r.(*runbooks.Resolver)
	for _, k := range []string{"deploy", "healthcheck", "spec", "incident", "schema_sync"} {
		require.Contains(t, rb.Kinds, k)
	}
	for _, tool := range []string{"vercel.deploy", "vercel.latest", "github.dispatch", "github.pr", "github.issue",
		"digitalocean.droplets", "http.check", "supabase.health"} {
		require.Contains(t, rb.Tools, tool)
	}

	require.Nil(t, newNotifier(e), "no webhooks: no notifier (and no typed nil)")
	e.cfg.Notifications.Slack = []string{"https://hooks.slack.com/services/T/B/x"}
	require.NotNil(t, newNotifier(e))
}

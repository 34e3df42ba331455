package cli

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
	"github.com/opscontrolroom/opsd/internal/notify"
	"github.com/opscontrolroom/opsd/runbooks"
	"github.com/opscontrolroom/opsd/supabase"
)

// newResolver wires the runbooks with the configured integrations. The
// project opsd runs against is the Supabase target of every env that has
// none of its own under integrations.supabase.
func newResolver(e *env, store executor.Store) (executor.Resolver, error) {
	return runbooks.New(runbooks.Deps{
		Store:        store,
		Integrations: e.cfg.Integrations,
		DefaultSupabase: config.SupabaseTarget{
			URL: e.cfg.SupabaseURL, Key: e.cfg.SupabaseServiceRoleKey, DatabaseURL: e.cfg.DatabaseURL,
		},
		Redactor: e.redactor,
	}), nil
}

// newNotifier returns the notifier of the `notifications:` webhooks, or nil
// when none is configured.
func newNotifier(e *env) executor.Notifier {
	n := notify.New(e.cfg.Notifications, notify.Options{Redactor: e.redactor})
	if n == nil {
		return nil // not a typed nil in the interface
	}
	return n
}

func migrateURL(ctx context.Context, url string, log *zap.Logger) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to migrate: %w", err)
	}
	defer conn.Close(ctx)
	applied, err := supabase.Migrate(ctx, conn, supabase.BootstrapAuto)
	for _, m := range applied {
		log.Info("applied migration", zap.String("version", m.Version), zap.String("name", m.Name))
	}
	return err
}

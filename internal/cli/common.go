package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
	"github.com/opscontrolroom/opsd/internal/redact"
	"github.com/opscontrolroom/opsd/supabase/migrations"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
	"github.com/opscontrolroom/opsd/supabase/reststore"
)

// withConfig registers the configuration flags on cmd and returns a loader.
func withConfig(cmd *cobra.Command) *config.Loader {
	return config.NewLoader(cmd.Flags())
}

// env holds what every command builds from configuration.
type env struct {
	cfg      *config.Config
	log      *zap.Logger
	redactor *redact.Redactor
}

func loadEnv(cmd *cobra.Command, l *config.Loader) (*env, error) {
	cfg, err := l.Load(cmd.Flags())
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	r := redact.New(cfg.Secrets()...)
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat, r)
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	return &env{cfg: cfg, log: log, redactor: r}, nil
}

// newLogger builds a zap logger to stderr whose every line passes the redactor.
func newLogger(level, format string, r *redact.Redactor) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log_level = %q: %w", level, err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey, encCfg.EncodeTime = "ts", zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(os.Stderr), lvl)
	return zap.New(redact.NewCore(core, r)), nil
}

// cliStore is what the commands ask of a store: the daemon's part (run,
// doctor) and the operator's (submit, tail, cancel, approve, status). Both
// backends implement both.
type cliStore interface {
	executor.Store
	executor.OperatorStore
}

// openStore opens the store the configuration selects.
func openStore(ctx context.Context, e *env) (cliStore, error) {
	kind, err := e.cfg.StoreKind()
	if err != nil {
		return nil, &ExitError{Code: 2, Err: err}
	}
	switch kind {
	case "postgres":
		s, err := pgstore.New(ctx, pgstore.Config{URL: e.cfg.DatabaseURL, Logger: e.log})
		if err != nil {
			return nil, fmt.Errorf("connect to DATABASE_URL: %w", err)
		}
		return s, nil
	default:
		s, err := reststore.New(reststore.Config{URL: e.cfg.SupabaseURL,
			ServiceRoleKey: e.cfg.SupabaseServiceRoleKey, Logger: e.log})
		if err != nil {
			return nil, fmt.Errorf("REST store for %s: %w", e.cfg.SupabaseURL, err)
		}
		return s, nil
	}
}

func schemaVersion() string { return migrations.SchemaVersion() }

// checkSchema fails when the database lacks migrations this binary needs.
func checkSchema(ctx context.Context, s executor.Store) error {
	got, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("read the database's schema version (is the schema applied? run `opsd migrate`): %w", err)
	}
	if want := migrations.SchemaVersion(); got != want {
		return fmt.Errorf("the database's schema is %q but this binary needs %q: run `opsd migrate`", got, want)
	}
	return nil
}

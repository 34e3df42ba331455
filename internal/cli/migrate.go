package cli

import (
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/opscontrolroom/opsd/supabase/migrations"
)

func newMigrateCmd() *cobra.Command {
	var (
		url       string
		check     bool
		bootstrap string
	)
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the schema migrations to a database (Supabase or plain PostgreSQL 15+)",
		Long: `migrate applies the migrations embedded in this binary (the same files as
supabase/migrations, so "supabase db push" agrees), each in its own
transaction, recording them in supabase_migrations.schema_migrations. Two
daemons migrating at once are serialized by an advisory lock.

On plain PostgreSQL the bootstrap (roles anon, authenticated, service_role and
the auth schema that Supabase provides) is applied first, automatically when
the role "anon" is missing (--bootstrap=auto), always, or never.`,
		Example: `  opsd migrate --database-url postgres://postgres:PASSWORD@db.xyz.supabase.co:5432/postgres
  opsd migrate --check     # list pending migrations; exit 1 when there are any`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if url == "" {
				return &ExitError{Code: 2, Err: fmt.Errorf("--database-url (or DATABASE_URL) is required: migrations need a direct PostgreSQL connection")}
			}
			mode := map[string]migrations.BootstrapMode{"auto": migrations.BootstrapAuto, "always": migrations.BootstrapAlways, "never": migrations.BootstrapNever}
			m, ok := mode[bootstrap]
			if !ok {
				return &ExitError{Code: 2, Err: fmt.Errorf("--bootstrap = %q: must be auto, always or never", bootstrap)}
			}
			ctx := cmd.Context()
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			defer conn.Close(ctx)
			out := cmd.OutOrStdout()
			if check {
				pending, err := migrations.Pending(ctx, conn)
				if err != nil {
					return err
				}
				for _, p := range pending {
					fmt.Fprintf(out, "pending %s_%s\n", p.Version, p.Name)
				}
				if len(pending) > 0 {
					return &ExitError{Code: 1, Err: fmt.Errorf("%d migration(s) pending", len(pending))}
				}
				fmt.Fprintf(out, "up to date (schema %s)\n", migrations.SchemaVersion())
				return nil
			}
			applied, err := migrations.Migrate(ctx, conn, m)
			for _, a := range applied {
				fmt.Fprintf(out, "applied %s_%s\n", a.Version, a.Name)
			}
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintf(out, "nothing to do (schema %s)\n", migrations.SchemaVersion())
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "database-url", "", "PostgreSQL URL (env DATABASE_URL)")
	cmd.Flags().BoolVar(&check, "check", false, "list pending migrations and exit non-zero if any")
	cmd.Flags().StringVar(&bootstrap, "bootstrap", "auto", "apply the plain-PostgreSQL bootstrap: auto, always or never")
	cmd.PreRun = func(cmd *cobra.Command, args []string) {
		if url == "" {
			url = lookupEnv("DATABASE_URL")
		}
	}
	return cmd
}

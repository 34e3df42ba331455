package migrations_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/supabase/migrations"
)

// TestMigrateEmptyDatabase: two migrators racing on an empty database apply
// every migration exactly once, record them where the Supabase CLI does, and
// a later run does nothing.
func TestMigrateEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	require.NoError(t, err)
	defer admin.Close(ctx)
	name := fmt.Sprintf("opsd_migrate_%d", len(t.Name()))
	_, err = admin.Exec(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`)
	require.NoError(t, err)
	_, err = admin.Exec(ctx, `CREATE DATABASE `+name)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`) })
	u, err := url.Parse(pgtest.AdminURL())
	require.NoError(t, err)
	u.Path = "/" + name

	var wg sync.WaitGroup
	applied := make([]int, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := pgx.Connect(ctx, u.String())
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(ctx)
			ms, err := migrations.Migrate(ctx, conn, migrations.BootstrapAuto)
			applied[i], errs[i] = len(ms), err
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.Equal(t, len(migrations.Migrations()), applied[0]+applied[1], "each migration applied once")

	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	defer conn.Close(ctx)
	again, err := migrations.Migrate(ctx, conn, migrations.BootstrapAuto)
	require.NoError(t, err)
	require.Empty(t, again)
	require.NoError(t, migrations.CheckSchema(ctx, conn))
	var version string
	require.NoError(t, conn.QueryRow(ctx, `SELECT opsd_schema_version()`).Scan(&version))
	require.Equal(t, migrations.SchemaVersion(), version)

	// A database missing the newest migration is reported as behind.
	_, err = conn.Exec(ctx, `DELETE FROM supabase_migrations.schema_migrations WHERE version = $1`, version)
	require.NoError(t, err)
	require.ErrorIs(t, migrations.CheckSchema(ctx, conn), migrations.ErrSchemaBehind)
}

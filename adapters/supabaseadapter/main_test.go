package supabaseadapter_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// TestMain gives the package a PostgreSQL (TEST_DATABASE_URL or a throwaway
// cluster) and checks for leaked goroutines.
func TestMain(m *testing.M) {
	pgtest.Main(m)
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// scratchDB returns a fresh database, dropped when the test ends. It holds
// opsd's own migrated schema; the tests introspect other schemas.
func scratchDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return pgtest.NewDB(t).Pool
}

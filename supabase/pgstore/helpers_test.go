package pgstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

func insertSession(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var id string
	require.NoError(t, pool.QueryRow(context.Background(), `INSERT INTO sessions DEFAULT VALUES RETURNING id`).Scan(&id))
	return id
}

func runStatus(t testing.TB, pool *pgxpool.Pool, id string) (status string, finished bool) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT status, finished_at IS NOT NULL FROM runs WHERE id = $1`, id).Scan(&status, &finished))
	return status, finished
}

package supabase_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// asRole runs fn in a transaction as a Supabase role, with the JWT claims set
// the way PostgREST sets them, so RLS and grants apply as in production.
// sub is the user id for authenticated (empty for anon and service_role).
func asRole(ctx context.Context, pool *pgxpool.Pool, role, sub string, fn func(tx pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	claims := map[string]any{"role": role}
	if sub != "" {
		claims["sub"] = sub
	}
	cj, _ := json.Marshal(claims)
	if _, err := tx.Exec(ctx, `SELECT set_config('request.jwt.claims', $1, true)`, string(cj)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+pgx.Identifier{role}.Sanitize()); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func insertRun(t testing.TB, pool *pgxpool.Pool, session *string, lane string, priority int) string {
	t.Helper()
	var id string
	err := pool.QueryRow(context.Background(),
		`INSERT INTO runs (env, kind, session_id, lane, priority) VALUES ('dev', 'healthcheck', $1, $2, $3) RETURNING id`,
		session, lane, priority).Scan(&id)
	require.NoError(t, err)
	return id
}

func insertSession(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var id string
	require.NoError(t, pool.QueryRow(context.Background(), `INSERT INTO sessions DEFAULT VALUES RETURNING id`).Scan(&id))
	return id
}

type claimed struct {
	ID        string  `json:"id"`
	SessionID *string `json:"session_id"`
	Lane      string  `json:"lane"`
	Attempt   int     `json:"attempt"`
	NextSeq   int     `json:"next_seq"`
	Priority  int     `json:"priority"`
}

func claim(ctx context.Context, pool *pgxpool.Pool, worker, lane string, limit int) ([]claimed, error) {
	rows, err := pool.Query(ctx, `SELECT claim_run($1, $2, $3)`, worker, lane, limit)
	if err != nil {
		return nil, err
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, err
	}
	out := make([]claimed, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func runStatus(t testing.TB, pool *pgxpool.Pool, id string) (status string, finished bool) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT status, finished_at IS NOT NULL FROM runs WHERE id = $1`, id).Scan(&status, &finished))
	return status, finished
}

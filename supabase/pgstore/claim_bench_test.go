package pgstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/uuid"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
)

// BenchmarkClaim measures the claim path, Store.ClaimRuns (claim_run with
// a claim token, one round trip), against a real PostgreSQL whose runs table
// also holds 10,000 finished runs of history:
//
//   - idle: a lane with nothing queued (what every wake-up and poll costs);
//   - one: one queued run per call (the pickup of a new run);
//   - batch16: 16 runs per call (a daemon catching up on a backlog);
//   - session: the head of a (session, lane) queue, under its advisory lock.
//
// Run:
//
//	go test ./supabase/pgstore/ -run '^$' -bench Claim -benchtime 2000x
func BenchmarkClaim(b *testing.B) {
	b.Run("idle", func(b *testing.B) {
		s, _ := claimBenchStore(b)
		benchClaims(b, s, "Z", 1, 0)
	})
	b.Run("one", func(b *testing.B) {
		s, db := claimBenchStore(b)
		claimBenchQueue(b, db, b.N, false)
		benchClaims(b, s, "A", 1, 1)
	})
	b.Run("batch16", func(b *testing.B) {
		s, db := claimBenchStore(b)
		claimBenchQueue(b, db, 16*b.N, false)
		benchClaims(b, s, "A", 16, 16)
	})
	b.Run("session", func(b *testing.B) {
		s, db := claimBenchStore(b)
		claimBenchQueue(b, db, b.N, true)
		benchClaims(b, s, "A", 1, 1)
	})
}

func benchClaims(b *testing.B, s *pgstore.Store, lane string, limit, want int) {
	ctx := context.Background()
	b.ResetTimer()
	began := time.Now()
	claimed := 0
	for range b.N {
		runs, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "bench", Lane: lane, Limit: limit, Token: uuid.New()})
		if err != nil {
			b.Fatal(err)
		}
		if len(runs) != want {
			b.Fatalf("claimed %d runs, want %d", len(runs), want)
		}
		claimed += len(runs)
	}
	secs := time.Since(began).Seconds()
	b.ReportMetric(float64(b.N)/secs, "claims/s")
	if claimed > 0 {
		b.ReportMetric(float64(claimed)/secs, "runs/s")
	}
}

// claimBenchStore is a fresh database with 10,000 finished runs and a store on it.
func claimBenchStore(b *testing.B) (*pgstore.Store, *pgtest.DB) {
	b.Helper()
	ctx := context.Background()
	db := pgtest.NewDB(b)
	_, err := db.Pool.Exec(ctx, `INSERT INTO runs (env, kind, lane) SELECT 'dev', 'healthcheck', 'H' FROM generate_series(1, 10000)`)
	require.NoError(b, err)
	_, err = db.Pool.Exec(ctx, `UPDATE runs SET status = 'canceled' WHERE lane = 'H'`) // finished: history
	require.NoError(b, err)
	_, err = db.Pool.Exec(ctx, `ANALYZE runs`)
	require.NoError(b, err)
	s, err := pgstore.New(ctx, pgstore.Config{URL: db.URL, MaxConns: 2})
	require.NoError(b, err)
	b.Cleanup(s.Close)
	return s, db
}

// claimBenchQueue queues n runs in lane A, each in a session of its own
// when sessions is set.
func claimBenchQueue(b *testing.B, db *pgtest.DB, n int, sessions bool) {
	b.Helper()
	ctx := context.Background()
	q := `INSERT INTO runs (env, kind, lane, created_at)
		SELECT 'dev', 'healthcheck', 'A', now() + g * interval '1 microsecond' FROM generate_series(1, $1::int) g`
	if sessions {
		q = `WITH s AS (INSERT INTO sessions (title) SELECT 'bench' FROM generate_series(1, $1::int) RETURNING id)
			INSERT INTO runs (env, kind, lane, session_id) SELECT 'dev', 'healthcheck', 'A', id FROM s`
	}
	_, err := db.Pool.Exec(ctx, q, n)
	require.NoError(b, err)
}

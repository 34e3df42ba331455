package executor_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
)

// BenchmarkWriter measures the event writer end to end into PostgreSQL
// through the direct store, with its default settings (batch 500, flush
// 50 ms, buffer 20,000): b.N events emitted by concurrent runs with
// Emitter.Emit (every event a row), or b.N chatty lines of one run with
// Emitter.Log (coalesced into rows of up to 64 KiB, 10 a second: a faster
// producer is held back, so log/ measures that limit). The time runs until
// Writer.Sync returns, so every row counted is stored. Run:
//
//	go test ./executor/ -run '^$' -bench Writer -benchtime 200000x
//
// `opsd bench --scenario stream` measures the same on both stores.
func BenchmarkWriter(b *testing.B) {
	for _, runs := range []int{1, 8} {
		b.Run(fmt.Sprintf("emit/runs=%d", runs), func(b *testing.B) {
			benchWriter(b, runs, func(em *executor.Emitter, i int) error {
				return em.Emit(executor.LevelInfo, "Kubernetes",
					fmt.Sprintf("deployment web: replica %d ready (image registry.example.com/web:sha-1f2e3d)", i), nil)
			})
		})
	}
	b.Run("log/runs=1", func(b *testing.B) {
		benchWriter(b, 1, func(em *executor.Emitter, i int) error {
			return em.Log("Vercel", fmt.Sprintf("build line %07d: compiled web/app/chunk-%04d.js (12.3 kB)", i, i%10000))
		})
	})
}

func benchWriter(b *testing.B, runs int, emit func(em *executor.Emitter, i int) error) {
	ctx := context.Background()
	db := pgtest.NewDB(b)
	store, err := pgstore.New(ctx, pgstore.Config{URL: db.URL})
	require.NoError(b, err)
	b.Cleanup(store.Close)
	for range runs {
		_, err := db.Pool.Exec(ctx, `INSERT INTO runs (env, kind, lane) VALUES ('dev', 'deploy', 'bench')`)
		require.NoError(b, err)
	}
	claimed, err := store.ClaimRuns(ctx, executor.ClaimRequest{Worker: "bench", Lane: "bench", Limit: runs, LeaseFor: time.Hour})
	require.NoError(b, err)
	require.Len(b, claimed, runs)
	ids := make([]string, runs)
	for i, r := range claimed {
		ids[i] = r.ID
	}
	m := executor.NewMetrics()
	w := executor.NewWriter(store, "bench", executor.WriterConfig{}, nil, m)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.Start(wctx)
	emitters := make([]*executor.Emitter, runs)
	for i, id := range ids {
		emitters[i] = w.NewEmitter(ctx, id, 1, 1, 10, nil)
	}

	b.ResetTimer()
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for r, em := range emitters {
		n := b.N / runs
		if r < b.N%runs {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := emit(em, i); err != nil {
					errs <- err
					return
				}
			}
			errs <- em.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(b, err)
	}
	require.NoError(b, w.Sync(ctx))
	elapsed := time.Since(began)
	b.StopTimer()
	require.NoError(b, w.Stop(ctx))

	var rows int
	require.NoError(b, db.Pool.QueryRow(ctx, `SELECT count(*) FROM run_events WHERE run_id = ANY($1::uuid[])`, ids).Scan(&rows))
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
}

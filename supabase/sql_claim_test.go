package supabase_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// TestClaimConcurrent: 16 claimers over 2,000 runs spread on 50 sessions x 4
// lanes plus sessionless runs. Every run is claimed exactly once, a (session,
// lane) never has two runs in flight, each lane of a session runs in priority
// then created_at order, and sessionless runs are claimed in parallel.
func TestClaimConcurrent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := pgtest.NewDB(t)
	lanes := []string{"A", "B", "C", "D"}

	// 50 sessions x 4 lanes x 9 runs + 200 sessionless = 2,000 runs, with
	// random priorities so priority order and insertion order differ.
	type key struct{ session, lane string }
	expected := map[key][]string{} // runs of a (session, lane) in the order they must start
	_, err := db.Pool.Exec(ctx, `
		INSERT INTO sessions (id) SELECT gen_random_uuid() FROM generate_series(1, 50);
		INSERT INTO runs (env, kind, session_id, lane, priority, created_at)
		SELECT 'dev', 'healthcheck', s.id, l.lane, (random() * 3)::int * 10, clock_timestamp()
		  FROM sessions s, (VALUES ('A'), ('B'), ('C'), ('D')) l (lane), generate_series(1, 9);
		INSERT INTO runs (env, kind, lane, priority, created_at)
		SELECT 'dev', 'healthcheck', (ARRAY['A','B','C','D'])[1 + g % 4], 100, clock_timestamp()
		  FROM generate_series(1, 200) g;`)
	require.NoError(t, err)
	rows, err := db.Pool.Query(ctx, `SELECT id, session_id, lane FROM runs WHERE session_id IS NOT NULL
		ORDER BY session_id, lane, priority, created_at, id`)
	require.NoError(t, err)
	total := 0
	for rows.Next() {
		var id, s, l string
		require.NoError(t, rows.Scan(&id, &s, &l))
		expected[key{s, l}] = append(expected[key{s, l}], id)
		total++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 1800, total)

	var (
		mu            sync.Mutex
		claims        = map[string]int{}
		inFlight      = map[key]string{}
		started       = map[key][]string{}
		sessionless   int
		maxSessionles int
		violations    []string
	)
	g, gctx := errgroup.WithContext(ctx)
	for w := 0; w < 16; w++ {
		worker := fmt.Sprintf("w%02d", w)
		g.Go(func() error {
			idle := 0
			for idle < 3 {
				lane := lanes[rand.IntN(len(lanes))]
				got, err := claim(gctx, db.Pool, worker, lane, 1+rand.IntN(4))
				if err != nil {
					return fmt.Errorf("%s claim %s: %w", worker, lane, err)
				}
				if len(got) == 0 {
					var left int
					if err := db.Pool.QueryRow(gctx, `SELECT count(*) FROM runs WHERE status <> 'success'`).Scan(&left); err != nil {
						return err
					}
					if left == 0 {
						idle++
					}
					continue
				}
				mu.Lock()
				for _, c := range got {
					claims[c.ID]++
					if c.SessionID == nil {
						sessionless++
						maxSessionles = max(maxSessionles, sessionless)
						continue
					}
					k := key{*c.SessionID, c.Lane}
					if other, busy := inFlight[k]; busy {
						violations = append(violations, fmt.Sprintf("%s claimed %s while %s was in flight in %v", worker, c.ID, other, k))
					}
					inFlight[k] = c.ID
					started[k] = append(started[k], c.ID)
				}
				mu.Unlock()
				for _, c := range got {
					// Forget the lane before finishing, so a claim that comes
					// right after the finish commits is never a false alarm.
					mu.Lock()
					if c.SessionID == nil {
						sessionless--
					} else {
						delete(inFlight, key{*c.SessionID, c.Lane})
					}
					mu.Unlock()
					var ok bool
					if err := db.Pool.QueryRow(gctx, `SELECT finish_run($1, $2, $3, 'success')`, c.ID, worker, c.Attempt).Scan(&ok); err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("finish of %s by its owner %s was refused", c.ID, worker)
					}
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	require.Empty(t, violations)
	require.Len(t, claims, 2000, "every run claimed")
	for id, n := range claims {
		require.Equal(t, 1, n, "run %s claimed %d times", id, n)
	}
	for k, want := range expected {
		require.Equal(t, want, started[k], "start order of session %s lane %s", k.session, k.lane)
	}
	require.Greater(t, maxSessionles, 1, "sessionless runs should run in parallel")
}

// TestClaimSessionlessParallel: one claim of a lane takes several sessionless
// runs at once, but only the head run of a session's lane.
func TestClaimSessionlessParallel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	s := insertSession(t, db.Pool)
	first := insertRun(t, db.Pool, &s, "A", 100)
	insertRun(t, db.Pool, &s, "A", 100)
	for i := 0; i < 3; i++ {
		insertRun(t, db.Pool, nil, "A", 100)
	}
	insertRun(t, db.Pool, nil, "B", 1) // another lane is not touched

	got, err := claim(ctx, db.Pool, "w1", "A", 10)
	require.NoError(t, err)
	require.Len(t, got, 4)
	var ids []string
	for _, c := range got {
		ids = append(ids, c.ID)
		require.Equal(t, "A", c.Lane)
		require.Equal(t, 1, c.Attempt)
		require.Equal(t, 1, c.NextSeq)
	}
	require.Contains(t, ids, first)

	// Priority wins over age inside a lane.
	urgent := insertRun(t, db.Pool, nil, "C", 1)
	insertRun(t, db.Pool, nil, "C", 50)
	got, err = claim(ctx, db.Pool, "w1", "C", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, urgent, got[0].ID)
}

// TestClaimTokenReplay: replaying a claim with the same token (its response
// was lost) returns the same runs, with renewed leases, and claims nothing
// more.
func TestClaimTokenReplay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	for i := 0; i < 4; i++ {
		insertRun(t, db.Pool, nil, "A", 100)
	}
	token := "3f1b8f5e-0d6a-4c61-9b61-2a7f0d3c9e11"
	var first, again []string
	for i, dst := range []*[]string{&first, &again} {
		if i == 1 {
			// The answer was lost for a while: the replay renews the leases.
			_, err := db.Pool.Exec(ctx, `UPDATE runs SET lease_expires_at = now() + interval '1 second' WHERE claim_token = $1`, token)
			require.NoError(t, err)
		}
		rows, err := db.Pool.Query(ctx, `SELECT j->>'id' FROM claim_run('w1', 'A', 2, $1, 60) j`, token)
		require.NoError(t, err)
		for rows.Next() {
			var id string
			require.NoError(t, rows.Scan(&id))
			*dst = append(*dst, id)
		}
		require.NoError(t, rows.Err())
	}
	sort.Strings(first)
	sort.Strings(again)
	require.Len(t, first, 2)
	require.Equal(t, first, again)
	var running int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM runs WHERE status = 'running'`).Scan(&running))
	require.Equal(t, 2, running)
	var shortest float64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT min(extract(epoch FROM lease_expires_at - now())) FROM runs WHERE claim_token = $1`, token).Scan(&shortest))
	require.Greater(t, shortest, 30.0, "the replayed claims' leases run 60 s from the replay")

	// Another worker cannot replay someone else's token.
	got, err := db.Pool.Query(ctx, `SELECT 1 FROM claim_run('w2', 'A', 2, $1)`, token)
	require.NoError(t, err)
	n := 0
	for got.Next() {
		n++
	}
	require.NoError(t, got.Err())
	require.Equal(t, 2, n, "w2 claims the two other runs, not w1's")
}

func TestClaimRejectsBadArguments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	for _, tc := range []struct {
		worker, lane string
		limit        int
		want         string
	}{
		{"", "A", 1, "p_worker"},
		{"w", "", 1, "p_lane"},
		{"w", "A", 0, "p_limit"},
		{"w", "A", 5000, "p_limit"},
	} {
		_, err := claim(ctx, db.Pool, tc.worker, tc.lane, tc.limit)
		require.ErrorContains(t, err, tc.want)
	}
}

// TestClaimWaitsForNotBefore: a run waiting for a retry's backoff
// (not_before ahead) is not claimed; in a session it stays the head of its
// lane, so the lane's later runs wait rather than overtake it; a sessionless
// run waiting does not hold back the others.
func TestClaimWaitsForNotBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.NewDB(t)
	s := insertSession(t, db.Pool)
	head := insertRun(t, db.Pool, &s, "A", 100)
	insertRun(t, db.Pool, &s, "A", 200)
	waiting := insertRun(t, db.Pool, nil, "A", 100)
	free := insertRun(t, db.Pool, nil, "A", 300)
	_, err := db.Pool.Exec(ctx, `UPDATE runs SET not_before = now() + interval '1 hour' WHERE id = ANY($1::uuid[])`,
		[]string{head, waiting})
	require.NoError(t, err)

	got, err := claim(ctx, db.Pool, "w", "A", 10)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, free, got[0].ID, "only the sessionless run that is not waiting")

	_, err = db.Pool.Exec(ctx, `UPDATE runs SET not_before = now() - interval '1 second' WHERE id = $1`, head)
	require.NoError(t, err)
	got, err = claim(ctx, db.Pool, "w", "A", 10)
	require.NoError(t, err)
	require.Len(t, got, 1, "the head, once its backoff is over, then nothing more of its lane")
	require.Equal(t, head, got[0].ID)
}

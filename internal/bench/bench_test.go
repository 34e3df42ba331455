package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/internal/bench"
	"github.com/opscontrolroom/opsd/internal/bench/benchserver"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// tiny is quick mode made smaller still: the test checks that every
// scenario runs and reports what it should, not its numbers.
func tiny(scenarios ...string) bench.Options {
	return bench.Options{DatabaseURL: pgtest.AdminURL(), Scenarios: scenarios, Quick: true,
		Samples: 5, Runs: 40, Sessions: 2, Lines: 3000, Events: 3000, RESTEvents: 600, InFlight: 12,
		BaselineSamples: 2, BaselineDuration: time.Second, BaselineEvents: 40,
		PostgREST: benchserver.PostgREST}
}

func run(t *testing.T, o bench.Options) *bench.ScenarioResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := bench.Run(ctx, o)
	require.NoError(t, err)
	require.Len(t, rep.Scenarios, 1)
	s := rep.Scenarios[0]
	require.Empty(t, s.Error)
	checkOutput(t, rep)
	return s
}

// checkOutput: the markdown table has a line per row, and the JSON decodes.
func checkOutput(t *testing.T, rep *bench.Report) {
	t.Helper()
	var md bytes.Buffer
	require.NoError(t, rep.WriteMarkdown(&md))
	assert.Contains(t, md.String(), "| scenario | metric | opsd | original design |")
	for _, s := range rep.Scenarios {
		for _, r := range s.Rows {
			assert.Contains(t, md.String(), "| "+s.Name+" | "+r.Metric+" |")
		}
	}
	var js bytes.Buffer
	require.NoError(t, rep.WriteJSON(&js))
	var back bench.Report
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	require.Len(t, back.Scenarios, len(rep.Scenarios))
}

func row(t *testing.T, s *bench.ScenarioResult, metric string) bench.Row {
	t.Helper()
	for _, r := range s.Rows {
		if r.Metric == metric {
			return r
		}
	}
	t.Fatalf("no row %q in %s", metric, s.Name)
	return bench.Row{}
}

func TestPickup(t *testing.T) {
	t.Parallel()
	o := tiny("pickup", "baseline")
	s := run(t, o)
	for _, path := range []string{"notify", "webhook", "poll"} {
		assert.EqualValues(t, o.Samples, s.Counts["samples_"+path], path)
	}
	assert.EqualValues(t, o.BaselineSamples, s.Counts["samples_baseline"])
	for _, label := range []string{"LISTEN/NOTIFY (direct store)", "webhook (REST store)", "poll (direct store, no wake-ups)"} {
		for _, q := range []string{"p50", "p95", "p99"} {
			for _, what := range []string{"pickup ", "first event "} {
				r := row(t, s, what+label+" "+q)
				require.NotNil(t, r.Value, r.Metric)
				require.NotNil(t, r.Baseline, r.Metric)
				assert.Positive(t, *r.Value, r.Metric)
			}
		}
	}
}

func TestThroughput(t *testing.T) {
	t.Parallel()
	o := tiny("throughput", "baseline")
	o.Daemons = 2
	s := run(t, o)
	assert.EqualValues(t, o.Runs, s.Counts["runs_succeeded"], "every run succeeded")
	assert.EqualValues(t, o.Runs, s.Counts["artifacts"], "one artifact per run")
	assert.GreaterOrEqual(t, s.Counts["event_rows"], int64(o.Runs*10))
	r := row(t, s, "no-op runs/s")
	require.NotNil(t, r.Value)
	require.NotNil(t, r.Baseline)
	require.NotNil(t, r.Target)
	assert.Positive(t, *r.Value)
}

func TestThroughputWithoutSessions(t *testing.T) {
	t.Parallel()
	o := tiny("throughput")
	o.NoSessions = true
	s := run(t, o)
	assert.EqualValues(t, o.Runs, s.Counts["runs_succeeded"])
	assert.Nil(t, row(t, s, "no-op runs/s").Baseline, "no baseline unless asked")
}

func TestStream(t *testing.T) {
	t.Parallel()
	o := tiny("stream", "baseline")
	s := run(t, o)
	assert.EqualValues(t, o.Lines, s.Counts["lines_stored"], "no line lost")
	assert.Zero(t, s.Counts["lines_misplaced"], "lines in order")
	assert.Positive(t, s.Counts["chatty_rows"])
	assert.Less(t, s.Counts["chatty_rows"], int64(o.Lines), "lines are coalesced")
	assert.EqualValues(t, o.Events, s.Counts["raw_events_direct"])
	assert.EqualValues(t, o.RESTEvents, s.Counts["raw_events_rest"])
	lost := row(t, s, "chatty lines lost or out of order")
	require.NotNil(t, lost.Value)
	assert.Zero(t, *lost.Value)
	for _, m := range []string{"raw events written/s, direct store", "raw events written/s, REST store"} {
		r := row(t, s, m)
		require.NotNil(t, r.Value, m)
		require.NotNil(t, r.Baseline, m)
	}
}

// TestStreamWithoutPostgREST: with no PostgREST (opsd bench given none),
// the REST store's side is skipped and the report says why.
func TestStreamWithoutPostgREST(t *testing.T) {
	t.Parallel()
	o := tiny("stream")
	o.PostgREST = nil
	s := run(t, o)
	assert.EqualValues(t, o.Events, s.Counts["raw_events_direct"])
	assert.NotContains(t, s.Counts, "raw_events_rest")
	for _, r := range s.Rows {
		assert.NotContains(t, r.Metric, "REST store")
	}
	assert.True(t, slices.ContainsFunc(s.Notes, func(n string) bool { return strings.HasPrefix(n, "REST store skipped: no PostgREST") }), s.Notes)
}

// TestStreamOnAGivenPostgREST: a PostgREST the bench is given serves one
// database; the REST side runs on that database, not on a scratch one, and
// leaves it in place.
func TestStreamOnAGivenPostgREST(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDB(t)
	srv := postgresttest.New(t, db.URL, "given-postgrest-secret-0123456789")
	o := tiny("stream")
	o.PostgREST = bench.GivenPostgREST(srv.URL, srv.ServiceKey())
	o.RESTDatabaseURL = db.URL
	s := run(t, o)
	assert.EqualValues(t, o.RESTEvents, s.Counts["raw_events_rest"])
	var stored int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM run_events e JOIN runs r ON r.id = e.run_id WHERE r.intent = 'bench raw events'`).Scan(&stored))
	assert.Equal(t, o.RESTEvents, stored, "the REST side wrote to the given database")
}

func TestFootprint(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "opsd")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/opscontrolroom/opsd/cmd/opsd").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	o := tiny("footprint")
	o.Binary = bin
	s := run(t, o)
	assert.EqualValues(t, o.InFlight, s.Counts["in_flight"])
	for _, m := range []string{"start to first claim", "RSS idle", "goroutines idle", "binary size"} {
		r := row(t, s, m)
		require.NotNil(t, r.Value, m)
		assert.Positive(t, *r.Value, m)
	}
	assert.Positive(t, *row(t, s, "goroutines with 12 runs in flight").Value)
}

func TestOptions(t *testing.T) {
	o := bench.Options{Scenarios: []string{"pickup", "nope"}}
	err := o.Validate()
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), `"nope"`), err.Error())
	rep, err := bench.Run(context.Background(), bench.Options{Scenarios: []string{"footprint"}, DatabaseURL: pgtest.AdminURL()})
	require.NoError(t, err, "a failing scenario is reported, not returned")
	require.Len(t, rep.Scenarios, 1)
	assert.Contains(t, rep.Scenarios[0].Error, "--binary")
}

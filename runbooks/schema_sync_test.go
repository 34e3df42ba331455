package runbooks

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
	"github.com/opscontrolroom/opsd/internal/pgtest"
)

var syncClock = time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)

const syncPath = "supabase/migrations/20261126093000_schema_sync.sql"

// schemaDBs gives dev and staging databases of their own; staging has a
// table and an index dev lacks, dev a table staging dropped.
func schemaDBs(w *world) {
	dev, staging := pgtest.NewDB(w.t), pgtest.NewDB(w.t)
	ctx := context.Background()
	_, err := staging.Pool.Exec(ctx, `CREATE TABLE public.widgets (id bigint PRIMARY KEY, name text NOT NULL);
		CREATE INDEX widgets_name ON public.widgets (name)`)
	require.NoError(w.t, err)
	_, err = dev.Pool.Exec(ctx, `CREATE TABLE public.legacy (id int)`)
	require.NoError(w.t, err)
	sb := w.deps.Integrations.Supabase
	d, s := sb["dev"], sb["staging"]
	d.DatabaseURL, s.DatabaseURL = dev.URL, staging.URL
	sb["dev"], sb["staging"] = d, s
	w.deps.Now = func() time.Time { return syncClock }
}

func noPR(w *world, id string) {
	require.Empty(w.t, w.gh.PullRequests(testRepo), "no pull request may be opened")
}

func TestSchemaSync(t *testing.T) {
	t.Parallel()
	compare := runSpec{kind: "schema_sync", env: "dev", input: `{"target":"staging"}`}
	withPR := runSpec{kind: "schema_sync", env: "dev", input: `{"target":"staging","openPR":true}`}
	scenarios := []scenario{
		{
			name: "success_compare_only", run: compare, status: "success", setup: schemaDBs,
			check: func(w *world, id string) {
				noPR(w, id)
				diff, ok := w.artifact(id, "diff", "Schema diff dev → staging (public)")
				require.True(w.t, ok)
				require.Contains(w.t, diff.Value, "@@ table widgets @@")
				require.Contains(w.t, diff.Value, "@@ table legacy @@")
				mig, ok := w.artifact(id, "file", "Suggested migration (apply to dev)")
				require.True(w.t, ok)
				require.Contains(w.t, mig.Value, `CREATE TABLE "public"."widgets"`)
				require.Contains(w.t, mig.Value, "-- DROP TABLE") // destructive statements stay commented out
				require.True(w.t, w.hasEvent(id, "schema public differs between dev and staging"))
				require.True(w.t, w.hasEvent(id, "opsd never applies DDL itself"))
			},
		},
		{
			name: "success_with_pull_request", run: withPR, status: "success", setup: schemaDBs,
			check: func(w *world, id string) {
				prs := w.gh.PullRequests(testRepo)
				require.Len(w.t, prs, 1)
				require.Equal(w.t, "opsd/schema-sync-dev-to-staging-"+shortID(id), prs[0].Head)
				commit, ok := w.gh.Commit(testRepo, prs[0].HeadSHA)
				require.True(w.t, ok)
				mig, _ := w.artifact(id, "file", "Suggested migration")
				require.Equal(w.t, mig.Value, commit.Files[syncPath])
				require.Contains(w.t, mig.Title, syncPath)
				link, ok := w.artifact(id, "link", "Migration pull request")
				require.True(w.t, ok)
				require.Equal(w.t, prs[0].URL, link.Value)
			},
		},
		{
			name: "same_schema", run: withPR, status: "success",
			setup: func(w *world) {
				for _, env := range []string{"dev", "staging"} {
					t := w.deps.Integrations.Supabase[env]
					t.DatabaseURL = pgtest.NewDB(w.t).URL // both freshly migrated: the same schema
					w.deps.Integrations.Supabase[env] = t
				}
			},
			check: func(w *world, id string) {
				noPR(w, id)
				diff, _ := w.artifact(id, "diff", "Schema diff")
				require.Contains(w.t, diff.Value, "does not differ")
			},
		},
		{
			name: "validation_failure", status: "error", msg: `inputs from and target are both "dev"`,
			run: runSpec{kind: "schema_sync", env: "dev", input: `{"target":"dev","schema":"Public; DROP","openPR":"sure"}`},
			check: func(w *world, id string) {
				_, msg := w.finish(id)
				require.Contains(w.t, msg, `input "schema" must be a lower-case Postgres schema name`)
				require.Contains(w.t, msg, `input "openPR" must be true or false`)
			},
		},
		{
			name: "validation_failure_missing_target", status: "error", msg: `input "target" is required`,
			run: runSpec{kind: "schema_sync", env: "prod"},
		},
		{
			name: "preflight_failure_not_configured", run: compare, status: "error",
			msg: "the database of env staging is not configured: set integrations.supabase.staging.database_url",
			setup: func(w *world) {
				d := w.deps.Integrations.Supabase["dev"]
				d.DatabaseURL = pgtest.NewDB(w.t).URL
				w.deps.Integrations.Supabase["dev"] = d
			},
		},
		{
			name: "preflight_failure_same_database", run: compare, status: "error", msg: "dev and staging resolve to the same database",
			setup: func(w *world) {
				schemaDBs(w)
				s := w.deps.Integrations.Supabase["staging"]
				s.DatabaseURL = w.deps.Integrations.Supabase["dev"].DatabaseURL
				w.deps.Integrations.Supabase["staging"] = s
			},
		},
		{
			name: "action_failure", run: withPR, status: "error", msg: "open pull request",
			setup: func(w *world) {
				schemaDBs(w)
				w.gh.Fail(githubtest.Failure{Method: "POST", Path: "/repos/acme/web/pulls", Status: 422, Message: "No commits between main and head"})
			},
		},
		{
			name: "verify_failure", run: withPR, status: "error", msg: "verify failed: branch opsd/schema-sync-dev-to-staging-",
			setup: func(w *world) {
				schemaDBs(w)
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/commits/opsd/", Status: 404, Times: -1})
			},
		},
		{
			name: "cancel_during_action", run: withPR, status: "canceled", msg: "canceled by operator during action",
			setup: func(w *world) {
				schemaDBs(w)
				w.gh.Fail(githubtest.Failure{Method: "GET", Path: "/repos/acme/web/git/ref/", Delay: time.Minute, Status: 500})
			},
			during: cancelInAction, check: noPR,
		},
		{
			name: "dry_run", status: "success", setup: schemaDBs,
			run: runSpec{kind: "schema_sync", env: "dev", input: `{"to":"staging","openPR":true}`, dryRun: true},
			check: func(w *world, id string) {
				noPR(w, id)
				dryRunSkipped(w, id, "open a pull request in acme/web from opsd/schema-sync-dev-to-staging-"+shortID(id)+" into main adding "+syncPath)
				_, ok := w.artifact(id, "diff", "Schema diff")
				require.True(w.t, ok, "the diff is read-only: a dry run attaches it too")
			},
		},
	}
	blocked := withPR
	blocked.plan = blockPlan
	approval := approvalScenarios(blocked, func(w *world, id string) {
		require.Len(w.t, w.gh.PullRequests(testRepo), 1)
	}, noPR)
	for i := range approval {
		approval[i].setup = chain(schemaDBs, approval[i].setup)
	}
	runScenarios(t, append(scenarios, approval...))
}

func chain(fs ...func(*world)) func(*world) {
	return func(w *world) {
		for _, f := range fs {
			if f != nil {
				f(w)
			}
		}
	}
}

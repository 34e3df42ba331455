package runbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/supabaseadapter"
	"github.com/opscontrolroom/opsd/executor"
)

// schemaSyncRunbook compares the schema of two environments' databases and
// suggests the migration that turns one into the other; on request it opens
// a pull request adding that migration. It never applies DDL: it only reads
// the catalogs, in read-only transactions.
type schemaSyncRunbook struct {
	c   *clients
	run *executor.Run

	from, to, schema string
	openPR           bool
	repo, base       string
	targets          []executor.Target

	fromURL, toURL string
	changes        []supabaseadapter.Change
	diff           string
	migration      string

	gh     *github.Client
	branch string
	path   string
	pr     prResult
}

var (
	_ executor.DryRunner      = (*schemaSyncRunbook)(nil)
	_ executor.PhaseTimeouter = (*schemaSyncRunbook)(nil)
	_ executor.Targeter       = (*schemaSyncRunbook)(nil)
)

// Targets: both databases are read (introspection); the repository is
// written when a pull request is asked for.
func (s *schemaSyncRunbook) Targets() []executor.Target { return s.targets }

// PhaseTimeout: introspection of a large schema takes a while.
func (s *schemaSyncRunbook) PhaseTimeout(phase string) time.Duration {
	switch phase {
	case executor.PhasePreflight, executor.PhaseVerify:
		return 5 * time.Minute
	case executor.PhaseAction:
		return 3 * time.Minute
	}
	return time.Minute
}

// Validate reads from (default the run's env), to (or target), schema,
// openPR, repo and branch.
func (s *schemaSyncRunbook) Validate(ctx context.Context, rc *executor.RunContext) error {
	p := s.c.params(rc)
	s.from = p.str([]string{"from"}, s.run.Env)
	p.oneOf("from", s.from, Envs)
	s.to = p.str([]string{"to", "target"})
	p.required("target", s.to, fmt.Sprintf("the env whose schema %s is compared with: one of %s (or inputs from and to)", s.from, strings.Join(Envs, ", ")))
	p.oneOf("target", s.to, Envs)
	if s.from != "" && s.from == s.to {
		p.problem("inputs from and target are both %q: compare two different envs", s.from)
	}
	s.schema = p.str([]string{"schema"}, "public")
	p.shape("schema", s.schema, identPat, "a lower-case Postgres schema name such as public")
	s.openPR = p.boolean("openPR", false)
	s.repo = p.str([]string{"repo"}, s.c.cfg.GitHub.Repo)
	if s.openPR {
		p.required("repo", s.repo, expectRepo+" to open the migration pull request in (input openPR is true)")
	}
	p.shape("repo", s.repo, repoPattern, expectRepo)
	s.base = p.str([]string{"branch"})
	p.shape("branch", s.base, refPattern, expectRef)
	if err := p.err(); err != nil {
		return err
	}
	raw := []executor.Target{
		newTarget(targetDatabase, s.from, p.inputOrigin("from"), false),
		newTarget(targetDatabase, s.to, p.inputOrigin("to", "target"), false),
	}
	if s.openPR {
		raw = append(raw, newTarget(targetRepo, s.repo, p.inputOrigin("repo"), true))
	}
	var err error
	if s.targets, err = s.c.resolveTargets(s.run, raw); err != nil {
		return err
	}
	p.report(rc)
	return rc.Info(srcSystem, fmt.Sprintf("compare schema %s of %s (from) with %s (to)%s", s.schema, s.from, s.to, when(s.openPR, "; open a pull request with the migration")), nil)
}

// Preflight reaches both databases and compares their schemas (read-only),
// and checks the repository when a pull request is asked for.
func (s *schemaSyncRunbook) Preflight(ctx context.Context, rc *executor.RunContext) error {
	var err error
	if s.fromURL, err = s.c.DatabaseURL(s.from); err != nil {
		return err
	}
	if s.toURL, err = s.c.DatabaseURL(s.to); err != nil {
		return err
	}
	if s.fromURL == s.toURL {
		return fmt.Errorf("%s and %s resolve to the same database: set integrations.supabase.%s.database_url and integrations.supabase.%s.database_url", s.from, s.to, s.from, s.to)
	}
	if s.changes, err = s.compare(ctx, rc); err != nil {
		return err
	}
	s.diff = supabaseadapter.FormatDiff(s.changes)
	s.migration = supabaseadapter.SuggestMigration(s.changes)
	rc.SetOutput("changes", len(s.changes))
	if len(s.changes) == 0 {
		_ = rc.Success(srcSupabase, fmt.Sprintf("schema %s is the same in %s and %s", s.schema, s.from, s.to), nil)
	} else {
		_ = rc.Warn(srcSupabase, fmt.Sprintf("schema %s differs between %s and %s: %s", s.schema, s.from, s.to, summarizeChanges(s.changes)), nil)
	}
	if !s.openPR {
		return nil
	}
	ctx = traced(ctx, rc, "")
	if s.gh, err = s.c.GitHub(); err != nil {
		return err
	}
	if s.base == "" {
		if s.base, err = s.gh.DefaultBranch(ctx, s.repo); err != nil {
			return fmt.Errorf("repository %s is not reachable: %w", s.repo, err)
		}
	}
	if _, err := s.gh.GetRef(ctx, s.repo, s.base); err != nil {
		if errors.Is(err, github.ErrRefNotFound) {
			return fmt.Errorf("base branch %q does not exist in %s", s.base, s.repo)
		}
		return err
	}
	s.path = fmt.Sprintf("supabase/migrations/%s_schema_sync.sql", s.c.deps.Now().UTC().Format("20060102150405"))
	s.branch = fmt.Sprintf("opsd/schema-sync-%s-to-%s-%s", s.from, s.to, shortID(s.run.ID))
	return nil
}

// compare introspects both schemas and diffs them.
func (s *schemaSyncRunbook) compare(ctx context.Context, rc *executor.RunContext) ([]supabaseadapter.Change, error) {
	from, err := introspectURL(ctx, s.fromURL, s.schema)
	if err != nil {
		return nil, fmt.Errorf("read schema %s of %s: %w", s.schema, s.from, err)
	}
	to, err := introspectURL(ctx, s.toURL, s.schema)
	if err != nil {
		return nil, fmt.Errorf("read schema %s of %s: %w", s.schema, s.to, err)
	}
	_ = rc.Info(srcSupabase, fmt.Sprintf("read %s.%s: %d tables, %d functions; %s.%s: %d tables, %d functions",
		s.from, s.schema, len(from.Tables), len(from.Functions), s.to, s.schema, len(to.Tables), len(to.Functions)), nil)
	return supabaseadapter.Diff(from, to), nil
}

// introspectURL reads one schema over a short-lived connection.
func introspectURL(ctx context.Context, url, schema string) (*supabaseadapter.Schema, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return supabaseadapter.Introspect(ctx, conn, schema)
}

func summarizeChanges(cs []supabaseadapter.Change) string {
	counts := map[string]int{}
	for _, c := range cs {
		counts[string(c.Kind)+" "+string(c.Action)]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return fmt.Sprintf("%d changes (%s)", len(cs), strings.Join(parts, ", "))
}

// DescribeAction says whether a pull request would be opened.
func (s *schemaSyncRunbook) DescribeAction(ctx context.Context, rc *executor.RunContext) (string, error) {
	switch {
	case !s.openPR:
		return "nothing: no pull request asked for (input openPR); the diff and suggested migration are attached either way", nil
	case len(s.changes) == 0:
		return "nothing: the schemas do not differ", nil
	}
	return fmt.Sprintf("open a pull request in %s from %s into %s adding %s (%d changes)", s.repo, s.branch, s.base, s.path, len(s.changes)), nil
}

// Action opens the migration pull request, if asked and there is a difference.
func (s *schemaSyncRunbook) Action(ctx context.Context, rc *executor.RunContext) error {
	switch {
	case !s.openPR:
		return rc.Info(srcSystem, "no pull request asked for (input openPR); opsd never applies DDL itself", nil)
	case len(s.changes) == 0:
		return rc.Info(srcSystem, "the schemas do not differ: no pull request", nil)
	}
	ctx = traced(ctx, rc, "")
	args, _ := json.Marshal(map[string]any{"repo": s.repo, "base": s.base, "head": s.branch, "path": s.path})
	return rc.Step(ctx, executor.StepSpec{ID: "pull_request", Title: "Open the migration pull request", Kind: "tool", Tool: "github", Action: "pr", Args: args},
		func(ctx context.Context) error {
			body := fmt.Sprintf("Suggested by opsd run `%s`: the migration that turns schema `%s` of **%s** into that of **%s** (%s).\n\n"+
				"Review it before merging: statements that drop data are commented out. opsd never applied any of it.\n\n```diff\n%s```\n",
				s.run.ID, s.schema, s.from, s.to, summarizeChanges(s.changes), s.diff)
			var err error
			s.pr, err = s.c.openPR(ctx, rc, s.gh, prRequest{Repo: s.repo, Base: s.base, Branch: s.branch,
				Title:   fmt.Sprintf("Schema sync: %s to match %s (%d changes)", s.from, s.to, len(s.changes)),
				Body:    body,
				Message: fmt.Sprintf("Add schema sync migration %s -> %s (opsd run %s)", s.from, s.to, shortID(s.run.ID)),
				Files:   map[string]string{s.path: s.migration}})
			return err
		})
}

// Verify checks that neither schema changed during the run (the diff is
// still true), and that the pull request's branch holds the migration.
func (s *schemaSyncRunbook) Verify(ctx context.Context, rc *executor.RunContext) error {
	again, err := s.compare(ctx, rc)
	if err != nil {
		return err
	}
	if supabaseadapter.FormatDiff(again) != s.diff {
		return fmt.Errorf("schema %s of %s or %s changed during the run: the diff is stale; run schema_sync again", s.schema, s.from, s.to)
	}
	_ = rc.Success(srcSupabase, "the diff still holds: no schema changed during the run", nil)
	if s.pr.Commit == "" {
		return nil
	}
	return verifyBranch(traced(ctx, rc, ""), rc, s.gh, s.repo, s.branch, s.pr.Commit)
}

// Summarize attaches the diff, the suggested migration and the pull request.
func (s *schemaSyncRunbook) Summarize(ctx context.Context, rc *executor.RunContext) error {
	diff := s.diff
	if diff == "" {
		diff = fmt.Sprintf("(schema %s does not differ between %s and %s)\n", s.schema, s.from, s.to)
	}
	if err := rc.Artifact(ctx, executor.ArtifactDiff, fmt.Sprintf("Schema diff %s → %s (%s)", s.from, s.to, s.schema), diff); err != nil {
		return err
	}
	title := fmt.Sprintf("Suggested migration (apply to %s)", s.from)
	if s.path != "" {
		title += ": " + s.path
	}
	if err := rc.Artifact(ctx, executor.ArtifactFile, title, s.migration); err != nil {
		return err
	}
	if s.pr.URL != "" {
		if err := rc.Artifact(ctx, executor.ArtifactLink, "Migration pull request", s.pr.URL); err != nil {
			return err
		}
		rc.SetOutput("pull_request", s.pr.URL)
		return rc.Info(srcSystem, fmt.Sprintf("Next steps: review %s in %s, then merge it and let the migrations workflow apply it to %s.", s.path, s.pr.URL, s.from), nil)
	}
	if len(s.changes) == 0 {
		return rc.Info(srcSystem, "Next steps: nothing to do; the schemas match.", nil)
	}
	return rc.Info(srcSystem, fmt.Sprintf("Next steps: review the suggested migration; run again with openPR: true to propose it as %s in a pull request.",
		"supabase/migrations/<timestamp>_schema_sync.sql"), nil)
}

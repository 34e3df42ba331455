package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/supabase/pgstore"
)

// Slugs of the templates `opsd dev --demo` installs (and updates on every start).
const (
	demoHealthSlug = "opsd-demo-healthcheck"
	demoDeploySlug = "opsd-demo-deploy"
)

// demoTemplates use only the system actions (noop, sleep), so the demo needs
// no integration; their steps span preflight, action and verify. The
// healthcheck template stands in for the healthcheck kind when dev serves no
// HTTP endpoints to check.
var demoTemplates = []struct{ slug, title, yaml string }{
	{demoHealthSlug, "Demo: local healthcheck", `version: 1
steps:
  - {id: database, title: Local database, kind: system, action: noop, phase: preflight,
     args: {message: "the local PostgreSQL answered: this run was claimed from it and its events are stored in it"}}
  - {id: settle, title: Settle, kind: system, action: sleep, args: {duration: 500ms}}
  - {id: daemon, title: opsd daemon, kind: system, action: noop, phase: verify,
     args: {message: "the daemon heartbeats its lease and moved this run through every phase"}}
`},
	{demoDeploySlug, "Demo: deploy in phases", `version: 1
inputs:
  - {key: project, label: Project, type: string, required: true}
  - {key: version, label: Version, type: string, default: "1.0.0"}
steps:
  - {id: target, title: Check the target, kind: system, action: noop, phase: preflight,
     args: {message: "demo step: {{inputs.project}} would be checked here"}}
  - {id: build, title: Build, kind: system, action: sleep, args: {duration: 1s}}
  - {id: release, title: Release, kind: system, action: noop,
     args: {message: "demo step: {{inputs.project}} {{inputs.version}} would be released here"}}
  - {id: smoke, title: Smoke test, kind: system, action: sleep, phase: verify, args: {duration: 500ms}}
`},
}

// demoPollInterval is how often the demo polls for new events.
const demoPollInterval = 200 * time.Millisecond

// installDemoTemplates adds (or updates) the demo templates and returns
// their ids by slug.
func installDemoTemplates(ctx context.Context, dbURL string) (map[string]string, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("install the demo templates: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	ids := map[string]string{}
	for _, t := range demoTemplates {
		var id string
		err := conn.QueryRow(ctx, `INSERT INTO public.run_templates (slug, title, template_yaml) VALUES ($1, $2, $3)
			ON CONFLICT (slug) DO UPDATE SET title = excluded.title, template_yaml = excluded.template_yaml
			RETURNING id::text`, t.slug, t.title, t.yaml).Scan(&id)
		if err != nil {
			return nil, fmt.Errorf("install template %s: %w", t.slug, err)
		}
		ids[t.slug] = id
	}
	return ids, nil
}

// runDemo queues the demo runs in a session of their own (one lane each, so
// they run side by side as in the UI) and streams their events to out until
// all are finished. It fails when one did not succeed. httpAddr is where the
// daemon serves ("" for nowhere); ids are the demo templates' ids by slug.
func runDemo(ctx context.Context, out io.Writer, dbURL, httpAddr string, ids map[string]string, lanes []string) error {
	s, err := pgstore.New(ctx, pgstore.Config{URL: dbURL})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer s.Close()
	var session string
	if err := s.Pool().QueryRow(ctx, `INSERT INTO public.sessions (title, intent) VALUES ('opsd dev demo', $1) RETURNING id::text`,
		"runs queued by opsd dev --demo").Scan(&session); err != nil {
		return fmt.Errorf("demo: create session: %w", err)
	}

	deployInput, _ := json.Marshal(map[string]string{"project": "demo-web", "version": "1.4.2"})
	demos := []struct {
		name string
		run  executor.NewRun
	}{
		{"healthcheck", demoHealthcheck(httpAddr, ids[demoHealthSlug])},
		{"deploy", executor.NewRun{Kind: "deploy", TemplateID: ptrTo(ids[demoDeploySlug]), Input: deployInput,
			Intent: "opsd dev demo: a deploy through preflight, action and verify"}},
		{"deploy dry-run", executor.NewRun{Kind: "deploy", TemplateID: ptrTo(ids[demoDeploySlug]), Input: deployInput, DryRun: true,
			Intent: "opsd dev demo: the same deploy as a dry run (no action)"}},
	}
	w := &lockedWriter{w: out}
	color := os.Getenv("NO_COLOR") == "" && isTerminal(out)
	finished := make([]*executor.Run, len(demos))
	errs := make([]error, len(demos))
	var wg sync.WaitGroup
	for i, d := range demos {
		d.run.Env, d.run.SessionID, d.run.Lane = "dev", &session, lanes[i%len(lanes)]
		run, err := s.SubmitRun(ctx, d.run)
		if err != nil {
			errs[i] = fmt.Errorf("queue %s: %w", d.name, err)
			continue
		}
		fmt.Fprintf(w, "demo: queued %s as run %s (lane %s)\n", d.name, run.ID, run.Lane)
		f := &follower{store: s, interval: demoPollInterval,
			out: &renderer{w: w, color: color, prefix: fmt.Sprintf("%-17s", "["+d.name+"]")}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			finished[i], errs[i] = f.follow(ctx, run.ID)
		}()
	}
	wg.Wait()
	var failed []string
	for i, d := range demos {
		switch {
		case errs[i] != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", d.name, errs[i]))
		case finished[i].Status != executor.StatusSuccess:
			failed = append(failed, fmt.Sprintf("%s: %s", d.name, finished[i].Status))
		}
	}
	if len(failed) > 0 {
		return errors.New("demo runs did not all succeed: " + strings.Join(failed, "; "))
	}
	fmt.Fprintf(w, "demo: all %d runs succeeded; the UI shows them in session %s\n", len(demos), session)
	return nil
}

// demoHealthcheck is a run of the healthcheck kind that checks opsd's own
// /healthz and /readyz (the latter pings the database and checks the
// schema), or the healthcheck template when there is no HTTP server.
func demoHealthcheck(httpAddr, templateID string) executor.NewRun {
	if httpAddr == "" {
		return executor.NewRun{Kind: "healthcheck", TemplateID: &templateID,
			Intent: "opsd dev demo: the local database and the daemon"}
	}
	base := localBaseURL(httpAddr)
	input, _ := json.Marshal(map[string]any{"urls": []string{base + "/healthz", base + "/readyz"}})
	return executor.NewRun{Kind: "healthcheck", Input: input,
		Intent: "opsd dev demo: opsd's /healthz, and /readyz, which checks the database"}
}

func ptrTo[T any](v T) *T { return &v }

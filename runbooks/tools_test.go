package runbooks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestToolArgs: every tool validates its args before touching anything,
// naming the arg and what is expected.
func TestToolArgs(t *testing.T) {
	t.Parallel()
	tools := newTools(&clients{})
	cases := []struct {
		tool string
		args map[string]any
		want string // "" = valid
	}{
		{"vercel.deploy", map[string]any{"project": "web", "ref": "main"}, ""},
		{"vercel.deploy", map[string]any{"project": "web"}, "vercel.deploy: args.ref is required: a branch, tag or commit"},
		{"vercel.deploy", map[string]any{"project": "web", "ref": "main", "projct": "x"}, `unknown arg "projct" (known: project, ref, repo, target, wait)`},
		{"vercel.deploy", map[string]any{"project": "web", "ref": "main", "target": "moon"}, "args.target must be production, staging or preview"},
		{"vercel.deploy", map[string]any{"project": "web", "ref": "../x"}, "args.ref must be a branch"},
		{"vercel.latest", map[string]any{"project": "web", "requireReady": "maybe"}, "args.requireReady must be true or false"},
		{"github.dispatch", map[string]any{"repo": "acme/web", "workflow": "deploy.yml", "ref": "main", "inputs": map[string]any{"env": "prod"}}, ""},
		{"github.dispatch", map[string]any{"repo": "acme/web", "workflow": "../x", "ref": "main"}, "args.workflow must be a workflow file name such as deploy.yml"},
		{"github.dispatch", map[string]any{"repo": "acme/web", "workflow": "d.yml", "ref": "main", "inputs": "env=prod"}, "args.inputs must be an object"},
		{"github.ci", map[string]any{"repo": "acme", "ref": "main"}, `args.repo must be a GitHub repository "owner/name", got "acme"`},
		{"github.pr", map[string]any{"repo": "acme/web", "head": "x", "title": "t", "files": map[string]any{"a.md": "hi"}}, ""},
		{"github.pr", map[string]any{"repo": "acme/web", "head": "x", "title": "t", "files": map[string]any{"/etc/passwd": "x"}}, `path "/etc/passwd" must be a relative path`},
		{"github.pr", map[string]any{"repo": "acme/web", "head": "x", "title": "t"}, "args.files is required"},
		{"github.issue", map[string]any{"repo": "acme/web", "title": "t", "labels": []any{"a", 1.0}}, "args.labels[1] must be text"},
		{"github.issue", map[string]any{"repo": "acme/web", "title": "t", "fingerprint": "has space"}, "args.fingerprint must be up to 32"},
		{"digitalocean.droplets", map[string]any{"tag": "web", "status": "dead"}, "args.status must be new, active, off or archive"},
		{"http.check", map[string]any{"url": "https://example.com", "expect": 204.0}, ""},
		{"http.check", map[string]any{"url": "file:///etc/passwd"}, "args.url must be an http(s) URL"},
		{"http.check", map[string]any{"url": "https://example.com", "expect": 1.5}, "args.expect must be a whole number from 0 to 599"},
		{"supabase.health", map[string]any{"env": "qa"}, "args.env must be prod, staging or dev"},
		{"supabase.health", nil, ""},
	}
	for _, c := range cases {
		tool, ok := tools[c.tool]
		require.True(t, ok, c.tool)
		err := tool.Check(c.args)
		if c.want == "" {
			require.NoError(t, err, "%s %v", c.tool, c.args)
			continue
		}
		require.ErrorContains(t, err, c.want, "%s %v", c.tool, c.args)
	}
}

func (w *world) template(slug, yaml string) string {
	w.t.Helper()
	var id string
	require.NoError(w.t, w.db.Pool.QueryRow(context.Background(),
		`INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, $1, $2) RETURNING id`, slug, yaml).Scan(&id))
	return id
}

func (w *world) submitTemplate(tplID, input string) string {
	w.t.Helper()
	var id string
	require.NoError(w.t, w.db.Pool.QueryRow(context.Background(),
		`INSERT INTO runs (env, kind, template_id, input) VALUES ('staging', 'deploy', $1, $2) RETURNING id`, tplID, input).Scan(&id))
	return id
}

const toolsTemplate = `version: 1
inputs:
  - {key: project, type: string, required: true}
  - {key: site, type: string, required: true}
steps:
  - {id: health, kind: tool, tool: supabase, action: health, phase: preflight}
  - {id: ci, kind: tool, tool: github, action: ci, phase: preflight, args: {repo: acme/web, ref: main, requireChecks: true}}
  - {id: latest, kind: tool, tool: vercel, action: latest, phase: preflight, args: {project: "{{inputs.project}}", requireReady: true}}
  - {id: migrate, kind: tool, tool: github, action: dispatch, args: {repo: acme/web, workflow: migrate.yml, ref: main}}
  - {id: deploy, kind: tool, tool: vercel, action: deploy, args: {project: "{{inputs.project}}", ref: main}}
  - {id: pr, kind: tool, tool: github, action: pr, args: {repo: acme/web, head: opsd/notes, title: Release notes, files: {"docs/release.md": "# Release for {{inputs.project}}\n"}}}
  - {id: issue, kind: tool, tool: github, action: issue, args: {repo: acme/web, title: Deployed, fingerprint: release-1}}
  - {id: droplets, kind: tool, tool: digitalocean, action: droplets, phase: verify, args: {tag: web}}
  - {id: site, kind: tool, tool: http, action: check, phase: verify, args: {url: "{{inputs.site}}"}}
`

// TestTemplateTools runs a template of every tool action end to end.
func TestTemplateTools(t *testing.T) {
	t.Parallel()
	site := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(site.Close)

	t.Run("all_tools", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.start()
		id := w.submitTemplate(w.template("release", toolsTemplate), `{"project":"web","site":"`+site.URL+`/health"}`)
		w.expect(id, "success", "")
		require.Len(t, w.gh.Dispatches(testRepo), 1)
		require.Equal(t, 1, deployCreates(w))
		require.Len(t, w.gh.PullRequests(testRepo), 1)
		require.Len(t, w.gh.Issues(testRepo), 1)
		require.Contains(t, w.gh.Issues(testRepo)[0].Labels, "opsd-fingerprint:release-1")
		pr := w.gh.PullRequests(testRepo)[0]
		commit, _ := w.gh.Commit(testRepo, pr.HeadSHA)
		require.Equal(t, "# Release for web\n", commit.Files["docs/release.md"])
		var steps int
		require.NoError(t, w.db.Pool.QueryRow(t.Context(),
			`SELECT count(*) FROM run_steps WHERE run_id = $1 AND kind = 'tool' AND status = 'succeeded'`, id).Scan(&steps))
		require.Equal(t, 9, steps)
		require.True(t, w.hasEvent(id, "POST /v13/deployments -> 200"))
	})

	t.Run("bad_args_fail_validation", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.start()
		tpl := w.template("bad", `version: 1
steps:
  - {id: deploy, kind: tool, tool: vercel, action: deploy, args: {projct: web}}
`)
		id := w.submitTemplate(tpl, `{}`)
		w.expect(id, "error", `validate failed: invalid run: step deploy (vercel.deploy): vercel.deploy: args.project is required`)
		_, msg := w.finish(id)
		require.Contains(t, msg, `unknown arg "projct"`)
		require.Empty(t, w.vercel.Requests())
	})

	t.Run("template_url_refused", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t)
		w.start()
		tpl := w.template("ssrf", `version: 1
inputs: [{key: url, required: true}]
steps:
  - {id: probe, kind: tool, tool: http, action: check, args: {url: "{{inputs.url}}"}}
`)
		id := w.submitTemplate(tpl, `{"url":"http://[::ffff:169.254.169.254]/latest/meta-data/"}`)
		w.expect(id, "error", "url refused")
	})
}

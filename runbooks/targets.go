package runbooks

import (
	"fmt"
	"slices"
	"strings"

	"github.com/opscontrolroom/opsd/executor"
)

// Kinds of executor.Target the runbooks declare.
const (
	targetVercelProject = "Vercel project"
	targetVercelTarget  = "Vercel target"
	targetRepo          = "GitHub repository"
	targetDatabase      = "database"
	targetDroplet       = "droplet"
	targetDropletTag    = "droplet tag"
)

// allowSetting is the policy.envs.<env> list that allows a kind of target.
var allowSetting = map[string]string{
	targetVercelProject: "vercel_projects",
	targetRepo:          "github_repos",
	targetDatabase:      "databases",
	targetDroplet:       "droplets",
	targetDropletTag:    "droplet_tags",
}

// target is an unclassified target: what a runbook's validate resolved.
func newTarget(kind, name, input string, write bool) executor.Target {
	return executor.Target{Kind: kind, Name: name, Input: input, Write: write}
}

// vercelDeployTarget is the target of a Vercel deployment: production
// belongs to prod, staging to staging, preview to any env.
func vercelDeployTarget(t, input string) executor.Target {
	tg := newTarget(targetVercelTarget, targetName(t), input, true)
	switch t {
	case "production":
		tg.Env, tg.Production = "prod", true
	case "staging":
		tg.Env = "staging"
	}
	return tg
}

// resolveTargets classifies raw targets (env, production) and refuses any
// that the allowlist of the run's env does not name. The error wraps
// executor.ErrValidation and names the input, the value and the setting to
// change.
func (c *clients) resolveTargets(run *executor.Run, raw []executor.Target) ([]executor.Target, error) {
	out := make([]executor.Target, 0, len(raw))
	var bad []string
	for _, t := range raw {
		if t.Name == "" {
			continue
		}
		c.classify(&t)
		if setting, ok := allowSetting[t.Kind]; ok && !c.allowed(run.Env, t.Kind, t.Name) {
			from := t.Input
			if from == "" {
				from = t.Kind
			}
			bad = append(bad, fmt.Sprintf("%s = %q is not allowed for env %s: add it to policy.envs.%s.%s", from, t.Name, run.Env, run.Env, setting))
		}
		out = append(out, t)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %s", executor.ErrValidation, strings.Join(bad, "; "))
	}
	return out, nil
}

// classify sets a target's env and production mark from the configuration.
func (c *clients) classify(t *executor.Target) {
	prod := c.deps.Policy.Production
	switch t.Kind {
	case targetVercelProject:
		t.Production = containsFold(prod.VercelProjects, t.Name)
		var envs []string
		for env, p := range c.cfg.Vercel.Projects {
			if strings.EqualFold(p, t.Name) {
				envs = append(envs, env)
			}
		}
		if len(envs) == 1 {
			t.Env = envs[0]
		}
	case targetRepo:
		t.Production = containsFold(prod.GitHubRepos, t.Name)
	case targetDatabase:
		t.Env = t.Name
		t.Production = containsFold(prod.Databases, t.Name)
	case targetDroplet:
		t.Production = containsFold(prod.Droplets, t.Name)
	case targetDropletTag:
		t.Production = containsFold(prod.DropletTags, t.Name)
	}
	if t.Production && t.Env == "" {
		t.Env = "prod" // what is marked production belongs to prod
	}
}

// allowed reports whether runs of env may touch the named target: what
// Integrations names for env, plus policy.envs.<env>.
func (c *clients) allowed(env, kind, name string) bool {
	extra := c.deps.Policy.Envs[env]
	var list []string
	switch kind {
	case targetVercelProject:
		list = append(list, extra.VercelProjects...)
		if p := c.cfg.Vercel.Projects[env]; p != "" {
			list = append(list, p)
		} else {
			list = append(list, c.cfg.Vercel.Project)
		}
		list = append(list, c.defaultText("project"))
	case targetRepo:
		list = append(list, extra.GitHubRepos...)
		list = append(list, c.cfg.GitHub.Repo, c.defaultText("repo"))
	case targetDatabase:
		list = append(list, extra.Databases...)
		list = append(list, env)
	case targetDroplet:
		list = append(list, extra.Droplets...)
		list = append(list, c.cfg.DigitalOcean.Droplets...)
	case targetDropletTag:
		list = append(list, extra.DropletTags...)
		list = append(list, c.cfg.DigitalOcean.Tag)
	}
	return name != "" && containsFold(list, name)
}

// defaultText is integrations.defaults.<key> when it is text.
func (c *clients) defaultText(key string) string {
	for k, v := range c.cfg.Defaults {
		if s, ok := v.(string); ok && strings.EqualFold(k, key) {
			return strings.TrimSpace(s)
		}
	}
	return ""
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return x != "" && strings.EqualFold(x, s) })
}

// inputOrigin says which input chose a value: `input "key"` when the run
// gave the first of keys that is set, `integrations.defaults.key` when
// configuration did, "" when no key is set (a configured fallback).
func (p *params) inputOrigin(keys ...string) string {
	for _, k := range keys {
		if v, ok := p.given[k]; ok && v != nil && v != "" {
			return fmt.Sprintf("input %q", k)
		}
	}
	for _, k := range keys {
		if v, ok := p.defaults[strings.ToLower(k)]; ok && v != nil && v != "" {
			return "integrations.defaults." + k
		}
	}
	return ""
}

// withTargets gives a tool the function that says what it touches.
func withTargets(t Tool, f func(args map[string]any, env string) []executor.Target) Tool {
	t.Targets = f
	return t
}

// argText is a checked tool arg's text ("" when absent).
func argText(args map[string]any, key string) string {
	s, _ := args[key].(string)
	return strings.TrimSpace(s)
}

// argTarget declares the target named by one arg.
func argTarget(kind, key string, write bool) func(map[string]any, string) []executor.Target {
	return func(args map[string]any, _ string) []executor.Target {
		return []executor.Target{newTarget(kind, argText(args, key), "args."+key, write)}
	}
}

// vercelDeployTargets: the project and the deployment target (default from
// the run's env) are written; the source repository is read.
func vercelDeployTargets(args map[string]any, env string) []executor.Target {
	t, _ := vercelTarget(argText(args, "target"), env)
	from := ""
	if argText(args, "target") != "" {
		from = "args.target"
	}
	return []executor.Target{
		newTarget(targetVercelProject, argText(args, "project"), "args.project", true),
		vercelDeployTarget(t, from),
		newTarget(targetRepo, argText(args, "repo"), "args.repo", false),
	}
}

func dropletTargets(args map[string]any, _ string) []executor.Target {
	return []executor.Target{
		newTarget(targetDroplet, argText(args, "name"), "args.name", false),
		newTarget(targetDropletTag, argText(args, "tag"), "args.tag", false),
	}
}

// supabaseHealthTargets: the database of args.env, default the run's env.
func supabaseHealthTargets(args map[string]any, env string) []executor.Target {
	if e := argText(args, "env"); e != "" {
		return []executor.Target{newTarget(targetDatabase, e, "args.env", false)}
	}
	return []executor.Target{newTarget(targetDatabase, env, "", false)}
}

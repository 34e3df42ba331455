package config

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/viper"
)

// Policy is the `policy:` section: what runs of each env may touch beyond
// what `integrations:` names for that env, which targets are production,
// and whether a run may write to another env's target.
type Policy struct {
	// AllowCrossEnv lets a run write to a target of another env (a dev run
	// deploying to Vercel production); it still waits for approval when the
	// target is production. Default false (env OPSD_POLICY_ALLOW_CROSS_ENV).
	AllowCrossEnv bool `mapstructure:"allow_cross_env"`
	// Envs adds, per env (prod, staging, dev), what its runs may touch.
	Envs map[string]Allowlist `mapstructure:"envs"`
	// Production marks projects, repositories, droplets and databases as
	// production: writing to one needs approval, and only prod runs may.
	Production Allowlist `mapstructure:"production"`
}

// Allowlist names Vercel projects, GitHub repositories (owner/name),
// droplets, droplet tags and databases (by env: prod, staging, dev).
type Allowlist struct {
	VercelProjects []string `mapstructure:"vercel_projects"`
	GitHubRepos    []string `mapstructure:"github_repos"`
	Droplets       []string `mapstructure:"droplets"`
	DropletTags    []string `mapstructure:"droplet_tags"`
	Databases      []string `mapstructure:"databases"`
}

// policyEnvs are the envs runs.env allows.
var policyEnvs = []string{"prod", "staging", "dev"}

var (
	policyRepo = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$`)
	policyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$`)
)

func bindPolicyEnv(v *viper.Viper) {
	_ = v.BindEnv("policy.allow_cross_env", "OPSD_POLICY_ALLOW_CROSS_ENV")
}

// checkCrossEnv names a policy.allow_cross_env that is not a boolean.
func checkCrossEnv(v *viper.Viper) error {
	switch x := v.Get("policy.allow_cross_env").(type) {
	case nil, bool:
		return nil
	case string:
		if _, err := strconv.ParseBool(strings.TrimSpace(x)); err == nil || strings.TrimSpace(x) == "" {
			return nil
		}
	}
	return fmt.Errorf("policy.allow_cross_env (env OPSD_POLICY_ALLOW_CROSS_ENV) = %q: must be true or false", fmt.Sprint(v.Get("policy.allow_cross_env")))
}

// checkPolicyKeys refuses keys under policy: that opsd does not know, so a
// typo (github_repo for github_repos) is an error, not an allowlist that
// silently allows nothing more.
func checkPolicyKeys(v *viper.Viper, file string) error {
	lists := []string{"vercel_projects", "github_repos", "droplets", "droplet_tags", "databases"}
	for _, k := range v.AllKeys() {
		parts := strings.Split(k, ".")
		if parts[0] != "policy" {
			continue
		}
		ok := false
		switch {
		case len(parts) == 2:
			ok = parts[1] == "allow_cross_env"
		case len(parts) == 3 && parts[1] == "production":
			ok = slices.Contains(lists, parts[2])
		case len(parts) == 4 && parts[1] == "envs":
			if !slices.Contains(policyEnvs, parts[2]) {
				return fmt.Errorf("--config %s: policy.envs.%s: unknown env %q (use prod, staging or dev)", file, parts[2], parts[2])
			}
			ok = slices.Contains(lists, parts[3])
		}
		if !ok {
			return fmt.Errorf("--config %s: unknown option %q (policy takes allow_cross_env, envs.<env>.<list> and production.<list>, lists: %s)",
				file, k, strings.Join(lists, ", "))
		}
	}
	return nil
}

// Validate reports the first bad entry, naming its setting and value.
func (p Policy) Validate() error {
	envs := make([]string, 0, len(p.Envs))
	for env := range p.Envs {
		envs = append(envs, env)
	}
	sort.Strings(envs)
	for _, env := range envs {
		if !slices.Contains(policyEnvs, env) {
			return fmt.Errorf("policy.envs.%s: unknown env %q (use prod, staging or dev)", env, env)
		}
		if err := p.Envs[env].validate("policy.envs." + env); err != nil {
			return err
		}
	}
	return p.Production.validate("policy.production")
}

func (a Allowlist) validate(prefix string) error {
	check := func(key string, list []string, ok func(string) bool, want string) error {
		for i, s := range list {
			if !ok(s) {
				return fmt.Errorf("%s.%s[%d] = %q: must be %s", prefix, key, i, s, want)
			}
		}
		return nil
	}
	name := func(s string) bool { return policyName.MatchString(s) }
	for _, c := range []struct {
		key  string
		list []string
		ok   func(string) bool
		want string
	}{
		{"vercel_projects", a.VercelProjects, name, "a Vercel project name or id"},
		{"github_repos", a.GitHubRepos, func(s string) bool { return policyRepo.MatchString(s) && !strings.Contains(s, "..") }, `a GitHub repository "owner/name"`},
		{"droplets", a.Droplets, name, "a droplet name"},
		{"droplet_tags", a.DropletTags, name, "a droplet tag"},
		{"databases", a.Databases, func(s string) bool { return slices.Contains(policyEnvs, s) }, "the env of a database: prod, staging or dev (see integrations.supabase.<env>)"},
	} {
		if err := check(c.key, c.list, c.ok, c.want); err != nil {
			return err
		}
	}
	return nil
}

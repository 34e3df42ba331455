package runbooks

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/opscontrolroom/opsd/adapters/httpcheck"
	"github.com/opscontrolroom/opsd/executor"
)

// Operations tool actions: digitalocean.droplets, http.check, supabase.health.

type dropletArgs struct{ name, tag, status string }

func (c *clients) dropletsTool() Tool {
	return tool("digitalocean.droplets", func(a *argReader) dropletArgs {
		return dropletArgs{
			name:   a.str("name", false, projectPattern, "a droplet name"),
			tag:    a.str("tag", false, projectPattern, "a droplet tag"),
			status: orDefault(a.str("status", false, regexp.MustCompile(`^(new|active|off|archive)$`), "new, active, off or archive (default active)"), "active"),
		}
	}, func(ctx context.Context, rc *executor.RunContext, p dropletArgs) error {
		do, err := c.DigitalOcean()
		if err != nil {
			return err
		}
		ds, err := do.Droplets(ctx, p.name, p.tag)
		if err != nil {
			return err
		}
		if len(ds) == 0 {
			return fmt.Errorf("digitalocean.droplets: no droplet matched (name %q, tag %q)", p.name, p.tag)
		}
		var bad []string
		for _, d := range ds {
			_ = rc.Info(srcDigitalOcean, fmt.Sprintf("droplet %s (%d) %s in %s, %s", d.Name, d.ID, d.Status, d.Region, orDefault(d.PublicIPv4, "no public IPv4")), nil)
			if d.Status != p.status {
				bad = append(bad, fmt.Sprintf("%s is %s", d.Name, d.Status))
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("digitalocean.droplets: want %s: %s", p.status, strings.Join(bad, ", "))
		}
		return nil
	})
}

type httpArgs struct {
	url    string
	expect int
}

func (c *clients) httpCheckTool() Tool {
	return tool("http.check", func(a *argReader) httpArgs {
		p := httpArgs{url: a.str("url", true, nil, "an http(s) URL"), expect: a.integer("expect", 0, 0, 599)}
		if p.url != "" && !strings.HasPrefix(p.url, "http://") && !strings.HasPrefix(p.url, "https://") {
			a.problem("args.url must be an http(s) URL, got %q", p.url)
		}
		return p
	}, func(ctx context.Context, rc *executor.RunContext, p httpArgs) error {
		// Template URLs are untrusted: the Checker holds every connection
		// and redirect to the URL policy.
		ck := httpcheck.NewChecker(c.URLPolicy(), urlCheckTimeout)
		defer ck.Close()
		res := ck.Check(traced(ctx, rc, srcSystem), p.url, p.expect)
		if !res.OK {
			return fmt.Errorf("http.check %s: %s", res.URL, res.Err)
		}
		return rc.Success(srcSystem, fmt.Sprintf("%s answered %d in %s", res.URL, res.Status, res.Latency.Round(1e6)), nil)
	})
}

type supabaseArgs struct{ env string }

func (c *clients) supabaseHealthTool() Tool {
	return tool("supabase.health", func(a *argReader) supabaseArgs {
		return supabaseArgs{env: a.str("env", false, envPattern, "prod, staging or dev (default: the run's env)")}
	}, func(ctx context.Context, rc *executor.RunContext, p supabaseArgs) error {
		env := orDefault(p.env, rc.Run.Env)
		sb, err := c.Supabase(env)
		if err != nil {
			return err
		}
		_, err = supabaseHealth(ctx, rc, sb, env)
		return err
	})
}

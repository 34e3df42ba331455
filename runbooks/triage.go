package runbooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/supabaseadapter"
	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/executor"
)

// fingerprintPrefix starts the label (and body marker) that identifies the
// issue of one incident, so that repeated runs comment instead of opening
// duplicates.
const fingerprintPrefix = "opsd-fingerprint:"

// triage is what an incident run found.
type triage struct {
	env, repo, branch, project string

	deployment *vercel.Deployment // latest finished deployment, when it failed
	logTail    string
	runs       []github.Run
	health     *supabaseadapter.Report
	skipped    []string

	fingerprint string
}

// triageVercel finds the latest finished deployment of the project and, if
// it failed, reads the end of its build log (through rc.Log, coalesced).
func (c *clients) triageVercel(ctx context.Context, rc *executor.RunContext, t *triage) error {
	vc, err := c.Vercel()
	switch {
	case isNotConfigured(err):
		t.skipped = append(t.skipped, "Vercel: "+err.Error())
		return rc.Warn(srcVercel, "Vercel not triaged: "+err.Error(), nil)
	case err != nil:
		return err
	case t.project == "":
		t.skipped = append(t.skipped, "Vercel: no project (input project, integrations.vercel.projects.<env> or integrations.vercel.project)")
		return rc.Warn(srcVercel, "Vercel not triaged: no project configured; set input project or integrations.vercel.project", nil)
	}
	target, _ := vercelTarget("", t.env)
	ds, err := vc.ListDeployments(ctx, t.project, targetName(target), 10)
	if err != nil {
		return fmt.Errorf("deployments of %s: %w", t.project, err)
	}
	var last *vercel.Deployment
	for i := range ds {
		if ds[i].Done() {
			last = &ds[i]
			break
		}
	}
	switch {
	case last == nil:
		return rc.Info(srcVercel, fmt.Sprintf("no finished %s deployment of %s", targetName(target), t.project), nil)
	case last.State != vercel.StateError:
		return rc.Info(srcVercel, "latest finished deployment is fine: "+describeDeployment(last), nil)
	}
	// List items lack the error details: read the deployment itself.
	if full, err := vc.GetDeployment(ctx, last.ID); err == nil {
		last = full
	} else if ctx.Err() != nil {
		return ctx.Err()
	}
	t.deployment = last
	_ = rc.Error(srcVercel, "latest finished deployment failed: "+describeDeployment(last)+" "+last.ErrorMessage, nil)
	if t.logTail, err = buildLogTail(ctx, rc, vc, last.ID, incidentLogLines); err != nil {
		return fmt.Errorf("build log of %s: %w", last.ID, err)
	}
	return nil
}

// findings are the failures, one line each.
func (t *triage) findings() []string {
	var out []string
	if d := t.deployment; d != nil {
		out = append(out, fmt.Sprintf("Vercel deployment %s of %s failed (%s)", d.ID, t.project, orDefault(d.ErrorCode, d.State)))
	}
	for _, r := range t.runs {
		out = append(out, fmt.Sprintf("workflow %s %s on %s", r.Name, r.Conclusion, t.branch))
	}
	if t.health != nil && !t.health.OK() {
		out = append(out, "Supabase unhealthy: "+strings.Join(t.health.Failed(), ", "))
	}
	return out
}

// computeFingerprint identifies the incident by what fails, not by when:
// the env, repository, project, the deployment's error code, the failing
// workflows and Supabase checks. Another failing deployment with the same
// cause is the same incident.
func (t *triage) computeFingerprint() string {
	parts := []string{t.env, t.repo, t.project}
	if d := t.deployment; d != nil {
		parts = append(parts, "vercel:"+orDefault(d.ErrorCode, d.State))
	}
	var wfs []string
	for _, r := range t.runs {
		wfs = append(wfs, "workflow:"+r.Name+":"+r.Conclusion)
	}
	slices.Sort(wfs)
	parts = append(parts, wfs...)
	if t.health != nil {
		for _, f := range t.health.Failed() {
			parts = append(parts, "supabase:"+f)
		}
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])[:12]
}

// label is the fingerprint label (at most 50 characters, GitHub's limit).
func (t *triage) label() string { return fingerprintPrefix + t.fingerprint }

func (t *triage) title(run *executor.Run) string {
	f := t.findings()
	what := "reported incident"
	if len(f) > 0 {
		what = f[0]
		if len(f) > 1 {
			what += fmt.Sprintf(" (+%d more)", len(f)-1)
		}
	}
	return firstLine(fmt.Sprintf("[%s] Incident: %s", run.Env, what), 200)
}

// report is the triage report in markdown, with the fingerprint marker.
func (t *triage) report(run *executor.Run, notes string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Incident triage (%s)\n\nopsd run `%s`, %s.\n\n", t.env, run.ID, time.Now().UTC().Format(time.RFC3339))
	if run.Intent != "" {
		fmt.Fprintf(&b, "**Reported:** %s\n\n", run.Intent)
	}
	if notes != "" {
		fmt.Fprintf(&b, "**Notes:**\n\n%s\n\n", notes)
	}
	b.WriteString("### Findings\n\n")
	f := t.findings()
	if len(f) == 0 {
		b.WriteString("- Nothing failing was found automatically.\n")
	}
	for _, l := range f {
		b.WriteString("- " + l + "\n")
	}
	b.WriteString("\n### Vercel\n\n")
	switch d := t.deployment; {
	case d != nil:
		fmt.Fprintf(&b, "- Failed deployment: %s\n- Error: %s %s\n- Inspector: %s\n", describeDeployment(d), d.ErrorCode, d.ErrorMessage, d.InspectorURL)
		if t.logTail != "" {
			fmt.Fprintf(&b, "\n<details><summary>Build log (last %d lines)</summary>\n\n```\n%s```\n</details>\n", incidentLogLines, t.logTail)
		}
	default:
		b.WriteString("- No failed deployment.\n")
	}
	b.WriteString("\n### GitHub Actions\n\n")
	if len(t.runs) == 0 {
		fmt.Fprintf(&b, "- No failing workflows on %s@%s.\n", t.repo, t.branch)
	}
	for _, r := range t.runs {
		fmt.Fprintf(&b, "- %s #%d: %s (%.7s) %s\n", r.Name, r.RunNumber, r.Conclusion, r.HeadSHA, r.HTMLURL)
	}
	b.WriteString("\n### Supabase\n\n")
	if t.health == nil {
		b.WriteString("- Not checked.\n")
	} else {
		for _, c := range t.health.Checks {
			res := "ok"
			if !c.OK {
				res = fmt.Sprintf("FAILED: %v", c.Err)
			}
			fmt.Fprintf(&b, "- %s: %s\n", c.Name, res)
		}
	}
	if len(t.skipped) > 0 {
		b.WriteString("\n### Not triaged\n\n")
		for _, s := range t.skipped {
			b.WriteString("- " + s + "\n")
		}
	}
	fmt.Fprintf(&b, "\n<!-- %s%s -->\n", fingerprintPrefix, t.fingerprint)
	return b.String()
}

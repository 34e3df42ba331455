package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/digitalocean"
	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/vercel"
	"github.com/opscontrolroom/opsd/internal/uuid"
)

// realtimeTables are the tables the UI subscribes to (CONTRACT.md), plus
// run_steps, which opsd adds.
var realtimeTables = []string{"sessions", "runs", "run_events", "artifacts", "run_steps"}

const heartbeatSignature = "public.heartbeat_runs(text, uuid[], int[], int)"

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// dbChecksBlocked says why a check that needs the opsd schema cannot run.
func (d *doctor) dbChecksBlocked() (checkResult, bool) {
	switch {
	case d.schemaMissing:
		return skip("", "the schema is not applied (see schema)"), true
	case d.conn == nil && d.store == nil:
		return skip("", "needs a working store connection"), true
	}
	return checkResult{}, false
}

func (d *doctor) checkServiceRole(ctx context.Context) checkResult {
	if r, blocked := d.dbChecksBlocked(); blocked {
		return r
	}
	if d.kind == "rest" {
		status, _, body, err := d.rest(ctx, d.e.cfg.SupabaseServiceRoleKey, "rpc/heartbeat_runs",
			map[string]any{"p_worker": "opsd-doctor", "p_run_ids": []string{}, "p_attempts": []int{}})
		switch {
		case err != nil:
			return fail("", "call heartbeat_runs: %v", err)
		case status == http.StatusOK:
			return pass("the service-role key may call heartbeat_runs (called with no runs)")
		case status == http.StatusUnauthorized || status == http.StatusForbidden:
			return fail("set SUPABASE_SERVICE_ROLE_KEY to the service_role key (Project Settings, API), not the anon key",
				"heartbeat_runs refused with %d: %s", status, excerpt(body))
		case status == http.StatusNotFound:
			return fail(hintMigrate, "heartbeat_runs not found (404): %s", excerpt(body))
		}
		return fail("", "heartbeat_runs answered %d: %s", status, excerpt(body))
	}
	var user string
	var n int
	err := d.conn.QueryRow(ctx, `SELECT current_user::text,
		(SELECT count(*) FROM public.heartbeat_runs('opsd-doctor', '{}'::uuid[], '{}'::int[]))::int`).Scan(&user, &n)
	if err != nil {
		if sqlState(err) == "42501" {
			return fail("connect as the database owner (postgres on Supabase) or a role granted service_role",
				"the role in DATABASE_URL may not call heartbeat_runs: %v", err)
		}
		return fail(hintMigrate, "call heartbeat_runs: %v", err)
	}
	var svc, anon bool
	if err := d.conn.QueryRow(ctx, `SELECT has_function_privilege('service_role', $1, 'EXECUTE'),
		has_function_privilege('anon', $1, 'EXECUTE')`, heartbeatSignature).Scan(&svc, &anon); err != nil {
		return fail(hintMigrate, "read the grants of heartbeat_runs: %v", err)
	}
	switch {
	case anon:
		return fail("re-apply the security migration (opsd migrate) and look for extra GRANTs to anon",
			"anon may execute heartbeat_runs: the browser could renew leases")
	case !svc:
		return fail(hintMigrate, "service_role may not execute heartbeat_runs: a REST daemon could not heartbeat")
	}
	return pass("%s may call heartbeat_runs (called with no runs); service_role may, anon may not", user)
}

func (d *doctor) checkRealtime(ctx context.Context) checkResult {
	hint := "add them: ALTER PUBLICATION supabase_realtime ADD TABLE public.<table> (opsd migrate does it)"
	if d.kind == "rest" {
		return skip("in the Supabase dashboard, Database, Publications, supabase_realtime should list "+strings.Join(realtimeTables, ", "),
			"publication membership is not checkable over REST")
	}
	if r, blocked := d.dbChecksBlocked(); blocked {
		return r
	}
	var all *bool
	if err := d.conn.QueryRow(ctx, `SELECT puballtables FROM pg_publication WHERE pubname = 'supabase_realtime'`).Scan(&all); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fail("", "read pg_publication: %v", err)
	}
	if all == nil {
		return fail(hint, "the publication supabase_realtime does not exist: the UI gets no live updates")
	}
	if *all {
		return pass("supabase_realtime publishes all tables")
	}
	rows, err := d.conn.Query(ctx, `SELECT tablename::text FROM pg_publication_tables
		WHERE pubname = 'supabase_realtime' AND schemaname = 'public'`)
	if err != nil {
		return fail("", "read pg_publication_tables: %v", err)
	}
	in := map[string]bool{}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fail("", "read pg_publication_tables: %v", err)
		}
		in[t] = true
	}
	rows.Close()
	var missing []string
	for _, t := range realtimeTables {
		if !in[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return fail(hint, "not in supabase_realtime: %s (the UI misses their changes)", strings.Join(missing, ", "))
	}
	return pass("supabase_realtime publishes %s", strings.Join(realtimeTables, ", "))
}

// Outcomes of one insert into run_events tried as anon.
const (
	probeRefused    = "refused"     // by grants or RLS: right
	probeAccepted   = "accepted"    // a hole
	probeForeignKey = "foreign key" // grants and RLS let it through; only the missing run stopped it: a hole
)

// rlsProbes are the inserts tried: without an id (as the UI would send) and
// with one (which needs no sequence privilege).
var rlsProbes = []struct {
	what string
	sql  string
	body map[string]any
}{
	{"without an id", `INSERT INTO public.run_events (run_id, seq, level, source, message)
		VALUES (gen_random_uuid(), 1, 'info', 'System', 'opsd doctor probe')`, map[string]any{}},
	{"with an explicit id", `INSERT INTO public.run_events (id, run_id, seq, level, source, message)
		VALUES (-1, gen_random_uuid(), 1, 'info', 'System', 'opsd doctor probe')`, map[string]any{"id": -1}},
}

// checkRLS tries, as anon, to insert events for a run that does not exist.
// Nothing is kept either way: the direct probes run in a rolled-back
// transaction, and the missing run stops any insert that gets through.
func (d *doctor) checkRLS(ctx context.Context) checkResult {
	if r, blocked := d.dbChecksBlocked(); blocked {
		return r
	}
	var probe func(i int) (string, error)
	switch {
	case d.kind == "rest" && d.anonKey == "":
		return skip("pass --anon-key or set SUPABASE_ANON_KEY (the key the browser uses)", "needs the anon key")
	case d.kind == "rest":
		probe = func(i int) (string, error) { return d.restRLSProbe(ctx, i) }
	default:
		tx, err := d.conn.Begin(ctx)
		if err != nil {
			return fail("", "begin: %v", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
		if _, err := tx.Exec(ctx, `SET LOCAL ROLE anon`); err != nil {
			return skip("connect as the database owner (postgres), who may SET ROLE anon", "cannot act as anon: %v", err)
		}
		probe = func(i int) (string, error) {
			sp, err := tx.Begin(ctx) // a savepoint: a refused insert aborts only it
			if err != nil {
				return "", err
			}
			_, err = sp.Exec(ctx, rlsProbes[i].sql)
			_ = sp.Rollback(ctx)
			switch sqlState(err) {
			case "42501":
				return probeRefused, nil
			case "23503":
				return probeForeignKey, nil
			}
			if err == nil {
				return probeAccepted, nil
			}
			return "", err
		}
	}
	hole := "re-apply the security migration (opsd migrate) and remove extra GRANTs or policies on run_events"
	for i, p := range rlsProbes {
		outcome, err := probe(i)
		switch {
		case err != nil:
			return warn("", "insert as anon %s failed unexpectedly: %v", p.what, err)
		case outcome == probeAccepted:
			return fail(hole, "anon inserted into run_events %s (the insert was undone)", p.what)
		case outcome == probeForeignKey:
			return fail(hole, "anon passed the grants and RLS on run_events (%s); only the foreign key stopped the probe", p.what)
		}
	}
	how := "tried in a rolled-back transaction"
	if d.kind == "rest" {
		how = "tried with the anon key"
	}
	return pass("anon may not write run_events (%s)", how)
}

// restRLSProbe posts probe i to /rest/v1/run_events with the anon key.
func (d *doctor) restRLSProbe(ctx context.Context, i int) (string, error) {
	body := map[string]any{"run_id": uuid.New(), "seq": 1, "level": "info", "source": "System", "message": "opsd doctor probe"}
	for k, v := range rlsProbes[i].body {
		body[k] = v
	}
	status, _, resp, err := d.rest(ctx, d.anonKey, "run_events", body)
	switch {
	case err != nil:
		return "", err
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return probeRefused, nil
	case status < 300:
		return probeAccepted, nil
	case strings.Contains(string(resp), "23503"):
		return probeForeignKey, nil
	}
	return "", fmt.Errorf("answered %d: %s", status, excerpt(resp))
}

func (d *doctor) checkClock(ctx context.Context) checkResult {
	var skew, rtt time.Duration
	var resolution time.Duration // the database clock's precision as we read it
	switch {
	case d.conn != nil:
		var db time.Time
		t0 := time.Now()
		if err := d.conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&db); err != nil {
			return fail("", "read the database clock: %v", err)
		}
		rtt = time.Since(t0)
		skew = db.Sub(t0.Add(rtt / 2))
	case d.kind == "rest" && d.store != nil:
		t0 := time.Now()
		_, h, _, err := d.rest(ctx, d.e.cfg.SupabaseServiceRoleKey, "rpc/ping", map[string]any{})
		if err != nil {
			return fail("", "call ping(): %v", err)
		}
		rtt = time.Since(t0)
		db, err := http.ParseTime(h.Get("Date"))
		if err != nil {
			return skip("", "the API sent no usable Date header")
		}
		// Date has whole seconds: compare with the middle of its second.
		resolution = time.Second
		skew = db.Add(resolution / 2).Sub(t0.Add(rtt / 2))
	default:
		return skip("", "needs a working store connection")
	}
	abs, side := skew, "ahead of"
	if skew < 0 {
		abs, side = -skew, "behind"
	}
	detail := fmt.Sprintf("the database clock is %s %s this machine's (round trip %s)",
		abs.Round(100*time.Microsecond), side, rtt.Round(100*time.Microsecond))
	if abs > maxClockSkew+resolution/2 {
		return warn("sync this machine's clock (NTP, e.g. systemd-timesyncd); heartbeat ages and timeouts are judged by the database clock", "%s", detail)
	}
	return pass("%s", detail)
}

// rest posts JSON to the project's /rest/v1/path with key as apikey and bearer.
func (d *doctor) rest(ctx context.Context, key, path string, body any) (int, http.Header, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, nil, err
	}
	u := strings.TrimSuffix(d.e.cfg.SupabaseURL, "/") + "/rest/v1/" + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("apikey", key)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Prefer", "return=minimal")
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, out, err
}

func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// adapterOptions are the options of a doctor's one-shot adapter call: no
// retries, the check's time limit.
func (d *doctor) adapterOptions(token, baseURL string) adapters.Options {
	return adapters.Options{Token: token, BaseURL: baseURL, Timeout: d.http.Timeout, MaxRetries: -1}
}

// adapterResult turns an adapter call's error into a check result.
func adapterResult(err error, tokenVar, ok string) checkResult {
	if err == nil {
		return pass("%s", ok)
	}
	var ae *adapters.APIError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		return fail("check "+tokenVar+": it is expired, revoked or lacks the scopes opsd needs", "token rejected: %v", err)
	}
	if adapters.IsNotFound(err) {
		return fail("check the configured project or repository name and that the token may see it", "%v", err)
	}
	return fail("", "%v", err)
}

func (d *doctor) checkVercel(ctx context.Context) checkResult {
	v := d.e.cfg.Integrations.Vercel
	if v.Token == "" {
		return skip("set VERCEL_TOKEN (and VERCEL_TEAM_ID for a team) to deploy with Vercel", "not configured")
	}
	c, err := vercel.New(d.adapterOptions(v.Token, v.APIURL), v.TeamID)
	if err != nil {
		return fail("", "%v", err)
	}
	_, err = c.ListDeployments(ctx, v.Project, "", 1)
	what := "the account's deployments"
	if v.Project != "" {
		what = "deployments of " + v.Project
	}
	return adapterResult(err, "VERCEL_TOKEN", "token accepted (listed "+what+")")
}

func (d *doctor) checkGitHub(ctx context.Context) checkResult {
	g := d.e.cfg.Integrations.GitHub
	if g.Token == "" {
		return skip("set GITHUB_TOKEN to check CI and open pull requests", "not configured")
	}
	if g.Repo == "" {
		return warn("set integrations.github.repo (owner/name) so doctor can read it", "token configured but not checked: no repository to read")
	}
	c, err := github.New(d.adapterOptions(g.Token, g.APIURL))
	if err != nil {
		return fail("", "%v", err)
	}
	branch, err := c.DefaultBranch(ctx, g.Repo)
	return adapterResult(err, "GITHUB_TOKEN", fmt.Sprintf("token can read %s (default branch %s)", g.Repo, branch))
}

func (d *doctor) checkDigitalOcean(ctx context.Context) checkResult {
	o := d.e.cfg.Integrations.DigitalOcean
	if o.Token == "" {
		return skip("set DIGITALOCEAN_TOKEN to check droplets", "not configured")
	}
	c, err := digitalocean.New(d.adapterOptions(o.Token, o.APIURL))
	if err != nil {
		return fail("", "%v", err)
	}
	// One page by name is the cheapest authenticated call; an unknown name
	// just lists nothing.
	name := "opsd-doctor-probe"
	if len(o.Droplets) > 0 {
		name = o.Droplets[0]
	}
	ds, err := c.Droplets(ctx, name, "")
	return adapterResult(err, "DIGITALOCEAN_TOKEN", fmt.Sprintf("token accepted (%d droplet(s) named %s)", len(ds), name))
}

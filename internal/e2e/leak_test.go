package e2e

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters/digitalocean/dotest"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
	"github.com/opscontrolroom/opsd/adapters/vercel/verceltest"
	"github.com/opscontrolroom/opsd/internal/pgtest"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
)

func randToken(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// echoProxy fronts a provider fake. Requests whose URL mentions "echo" are
// refused with an error body in the provider's shape that echoes every
// credential the request carried (as a careless or hostile API would);
// "echo-5xx" gets a 502 HTML page doing the same. Other requests reach the
// fake.
func echoProxy(t *testing.T, fake string, shape func(creds string) string) *httptest.Server {
	t.Helper()
	target, err := url.Parse(fake)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := r.URL.String()
		if !strings.Contains(u, "echo") {
			proxy.ServeHTTP(w, r)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		creds := fmt.Sprintf("Authorization=%s apikey=%s url=%s", r.Header.Get("Authorization"), r.Header.Get("apikey"), u)
		if strings.Contains(u, "echo-5xx") {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			// Pad so a body cut at a round size cuts the token in two.
			fmt.Fprintf(w, "<html><body>%s bad gateway for %s</body></html>", strings.Repeat("x", 180), creds)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, shape(creds))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// leakSecrets are the planted secrets, by name.
type leakSecrets map[string]string

// leakOpsd starts `opsd run` with env added to a clean environment; its
// stderr is collected like startOpsd's.
func leakOpsd(t *testing.T, worker string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(opsdBin, append([]string{"run", "--worker-id", worker, "--log-format", "json",
		"--heartbeat-interval", "300ms", "--stale-after", "2s", "--reaper-period", "500ms",
		"--poll-interval", "100ms", "--poll-max-interval", "300ms"}, args...)...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "OPSD_") && !strings.HasPrefix(k, "SUPABASE_") && k != "DATABASE_URL" &&
			!strings.HasSuffix(k, "_TOKEN") && !strings.HasSuffix(k, "_API_URL") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	return launch(t, cmd, "leak")
}

// TestNoSecretLeaksInLogs runs two daemons (direct store and REST store) with
// every secret opsd can be given, against provider fakes that echo the
// credentials back in their error bodies, drives runs of every kind and
// template tool into those errors, and scans every log line and every row
// the browser can read for the secrets (raw, URL- or JSON-escaped, or cut to
// 12 characters) and for token shapes.
func TestNoSecretLeaksInLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The database password: a login role like Supabase's postgres user
	// (member of service_role, bypasses RLS). The test cluster trusts local
	// connections, so only the URL carries the password; opsd cannot know.
	admin, err := pgx.Connect(ctx, pgtest.AdminURL())
	require.NoError(t, err)
	role := "opsd_leak_" + strings.ToLower(randToken("abcdef0123456789", 10))
	dbPassword := "Pw/" + randToken(alnum, 20) + "+&=%"
	_, err = admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE %s LOGIN BYPASSRLS PASSWORD %s IN ROLE service_role`,
		role, "'"+strings.ReplaceAll(dbPassword, "'", "''")+"'"))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `DROP ROLE IF EXISTS `+role)
		admin.Close(context.Background())
	})
	db := pgtest.NewDB(t)
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	u.User = url.UserPassword(role, dbPassword)
	dbURL := u.String()

	s := leakSecrets{
		"GITHUB_TOKEN":        "ghp_" + randToken(alnum, 36),
		"VERCEL_TOKEN":        randToken(alnum, 24),
		"DIGITALOCEAN_TOKEN":  "dop_v1_" + randToken("0123456789abcdef", 64),
		"webhook secret":      "whsec-" + randToken(alnum, 24),
		"database password":   dbPassword,
		"staging db password": randToken(alnum, 22),
		"slack webhook path":  randToken(alnum, 24),
		"service-role key":    postgresttest.SignJWT("leak-test-jwt-secret-0123456789abcdef", "service_role", "", time.Hour),
		"staging Supabase key": postgresttest.SignJWT("leak-test-jwt-secret-0123456789abcdef", "service_role", "", 2*time.Hour) +
			"x",
	}

	// Provider fakes behind echoing proxies.
	gh := githubtest.New(t)
	gh.Token = s["GITHUB_TOKEN"]
	sha := gh.AddRepo("acme/web", "main")
	gh.SetStatus("acme/web", sha, "ci/build", "success")
	ghURL := echoProxy(t, gh.URL, func(c string) string {
		return fmt.Sprintf(`{"message":%s,"documentation_url":"https://docs.github.com/rest"}`, jsonString("Bad credentials: "+c))
	})
	vc := verceltest.NewServer(t, verceltest.WithToken(s["VERCEL_TOKEN"]))
	vcURL := echoProxy(t, vc.URL, func(c string) string {
		return fmt.Sprintf(`{"error":{"code":"forbidden","message":%s}}`, jsonString("Not authorized: "+c))
	})
	do := dotest.NewServer(t)
	do.Token = s["DIGITALOCEAN_TOKEN"]
	do.AddDroplet(dotest.Droplet{Name: "web-1"})
	doURL := echoProxy(t, do.URL, func(c string) string {
		return fmt.Sprintf(`{"id":"unauthorized","message":%s}`, jsonString("Unable to authenticate you: "+c))
	})
	sbEcho := echoProxy(t, "http://127.0.0.1:9", func(c string) string {
		return fmt.Sprintf(`{"message":%s}`, jsonString("Invalid API key: "+c))
	})
	var notified atomic.Int64
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		notified.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "no such hook: %s", r.URL.Path)
	}))
	t.Cleanup(slack.Close)

	cfgPath := filepath.Join(t.TempDir(), "opsd.yaml")
	cfgYAML := fmt.Sprintf(`integrations:
  vercel: {project: echo-web}
  github: {repo: acme/echo-repo}
  digitalocean: {droplets: [echo-droplet]}
  supabase:
    staging:
      url: %s/echo
      key: %s
      database_url: postgres://leakuser:%s@127.0.0.1:1/staging
notifications:
  slack: [%s/services/T000/B000/%s]
`, sbEcho.URL, s["staging Supabase key"], s["staging db password"], slack.URL, s["slack webhook path"])
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfgYAML), 0o600))

	rest := postgresttest.New(t, db.URL, "leak-test-rest-jwt-secret-0123456789abcdef")
	s["REST service-role key"] = rest.ServiceKey()
	common := []string{
		"GITHUB_TOKEN=" + s["GITHUB_TOKEN"], "GITHUB_API_URL=" + ghURL.URL,
		"VERCEL_TOKEN=" + s["VERCEL_TOKEN"], "VERCEL_API_URL=" + vcURL.URL,
		"DIGITALOCEAN_TOKEN=" + s["DIGITALOCEAN_TOKEN"], "DIGITALOCEAN_API_URL=" + doURL.URL,
		"OPSD_WEBHOOK_SECRET=" + s["webhook secret"],
	}
	direct := leakOpsd(t, "leak-direct", append(common, "DATABASE_URL="+dbURL,
		"SUPABASE_URL="+sbEcho.URL+"/echo-default", "SUPABASE_SERVICE_ROLE_KEY="+s["service-role key"]),
		"--config", cfgPath, "--http-addr", "127.0.0.1:0", "--lanes", "A,B")
	viaREST := leakOpsd(t, "leak-rest", append(common, "SUPABASE_URL="+rest.URL, "SUPABASE_SERVICE_ROLE_KEY="+rest.ServiceKey()),
		"--config", cfgPath, "--http-addr", "", "--lanes", "C,D")

	// The webhook: wrong secrets, then the right one.
	var addr string
	waitFor(t, 20*time.Second, "the direct daemon's HTTP address", func() bool {
		for _, line := range strings.Split(direct.Logs(), "\n") {
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"http_addr"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "opsd running" {
				addr = l.Addr
				return true
			}
		}
		return false
	})
	for _, auth := range []string{"Bearer " + s["webhook secret"][:10], "Bearer " + s["webhook secret"] + "x", "Bearer " + s["webhook secret"]} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/wake", strings.NewReader(`{"run_id":"`+s["webhook secret"]+`"}`))
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
	}

	// Runs: every kind, and templates whose tool steps call each provider.
	tpl := func(slug, step string) string {
		var id string
		require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO run_templates (slug, title, template_yaml) VALUES ($1, $1, $2) RETURNING id`,
			slug, "version: 1\nsteps:\n  - "+step+"\n").Scan(&id))
		return id
	}
	templates := []string{
		tpl("vercel-echo", `{id: latest, title: Latest, kind: tool, tool: vercel, action: latest, args: {project: echo-web}}`),
		tpl("vercel-5xx", `{id: latest, title: Latest, kind: tool, tool: vercel, action: latest, args: {project: echo-5xx}}`),
		tpl("github-echo", `{id: ci, title: CI, kind: tool, tool: github, action: ci, args: {repo: acme/echo-repo, ref: main}}`),
		tpl("github-5xx", `{id: ci, title: CI, kind: tool, tool: github, action: ci, args: {repo: acme/echo-5xx, ref: main}}`),
		tpl("github-ok", `{id: ci, title: CI, kind: tool, tool: github, action: ci, args: {repo: acme/web, ref: main}}`),
		tpl("do-echo", `{id: d, title: Droplets, kind: tool, tool: digitalocean, action: droplets, args: {name: echo-droplet}}`),
		tpl("do-ok", `{id: d, title: Droplets, kind: tool, tool: digitalocean, action: droplets, args: {name: web-1}}`),
		tpl("supabase-echo", `{id: s, title: Supabase, kind: tool, tool: supabase, action: health, args: {env: staging}}`),
		tpl("supabase-default", `{id: s, title: Supabase, kind: tool, tool: supabase, action: health, args: {env: dev}}`),
	}
	inputs := `{"project":"echo-web","repo":"acme/echo-repo","branch":"main","from":"staging","to":"dev","notes":"document the echo service"}`
	var runs []string
	for i, lane := range []string{"A", "C"} { // one set per daemon
		for _, id := range templates {
			var run string
			require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, template_id, lane) VALUES ('dev', 'healthcheck', $1, $2) RETURNING id`,
				id, lane).Scan(&run))
			runs = append(runs, run)
		}
		for _, k := range [][2]string{{"healthcheck", "dev"}, {"healthcheck", "staging"}, {"deploy", "dev"}, {"incident", "dev"},
			{"schema_sync", "staging"}, {"spec", "dev"}} {
			var run string
			require.NoError(t, db.Pool.QueryRow(ctx, `INSERT INTO runs (env, kind, lane, input) VALUES ($1, $2, $3, $4) RETURNING id`,
				k[1], k[0], []string{"B", "D"}[i], inputs).Scan(&run))
			runs = append(runs, run)
		}
	}
	waitFor(t, 3*time.Minute, "every run to finish", func() bool {
		return count(t, db.Pool, `SELECT count(*) FROM runs WHERE finished_at IS NULL`) == 0
	})
	errored := count(t, db.Pool, `SELECT count(*) FROM runs WHERE status = 'error'`)
	require.Greater(t, errored, len(runs)/2, "most runs must fail on the echoed errors")
	waitFor(t, 30*time.Second, "a notification attempt", func() bool { return notified.Load() > 0 })
	for _, p := range []*proc{direct, viaREST} {
		p.signal(t, syscall.SIGTERM)
		require.Equal(t, 0, p.wait(t, 30*time.Second))
	}

	// Everything the browser or an operator can read.
	corpus := map[string]string{}
	for name, p := range map[string]*proc{"leak-direct": direct, "leak-rest": viaREST} {
		for i, line := range strings.Split(p.Logs(), "\n") {
			corpus[fmt.Sprintf("stderr of %s line %d", name, i+1)] = line
		}
	}
	for name, q := range map[string]string{
		"run_events": `SELECT run_id || ' #' || seq, message || ' ' || coalesce(data::text, '') FROM run_events`,
		"artifacts":  `SELECT run_id || ' ' || title, title || ' ' || value FROM artifacts`,
		"runs":       `SELECT id::text, row_to_json(r)::text FROM runs r`,
		"run_steps":  `SELECT run_id || ' #' || idx, row_to_json(s)::text FROM run_steps s`,
		"spec_docs":  `SELECT slug, title || ' ' || content FROM spec_docs`,
	} {
		rows, err := db.Pool.Query(ctx, q)
		require.NoError(t, err)
		for rows.Next() {
			var key, text string
			require.NoError(t, rows.Scan(&key, &text))
			corpus[name+" "+key] = text
		}
		require.NoError(t, rows.Err())
	}
	require.Greater(t, count(t, db.Pool, `SELECT count(*) FROM run_events WHERE message ILIKE '%authoriz%' OR message ILIKE '%credential%' OR message ILIKE '%api key%'`), 0,
		"the echoed error bodies must have reached the events (else this test proves nothing)")

	hits := scanForSecrets(s, corpus)
	for _, h := range hits {
		t.Error(h)
	}
	t.Logf("scanned %d log lines and rows for %d secrets: %d hits", len(corpus), len(s), len(hits))
}

var tokenShapes = map[string]*regexp.Regexp{
	"GitHub token": regexp.MustCompile(`\bgh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}`),
	"JWT":          regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`),
	"DO token":     regexp.MustCompile(`do[opr]_v1_[a-f0-9]{20,}`),
}

// scanForSecrets looks for each secret in every text: whole, URL- and
// JSON-escaped, and any 12-character piece of it (a token cut short by a
// truncated error body is still a leak); then for token shapes.
func scanForSecrets(secrets leakSecrets, corpus map[string]string) []string {
	var hits []string
	for where, text := range corpus {
		for name, secret := range secrets {
			forms := map[string]string{"raw": secret, "query-escaped": url.QueryEscape(secret),
				"path-escaped": url.PathEscape(secret), "json-escaped": strings.Trim(jsonString(secret), `"`)}
			found := false
			for form, v := range forms {
				if strings.Contains(text, v) {
					hits = append(hits, fmt.Sprintf("%s (%s) in %s: %.200s", name, form, where, excerpt(text, v)))
					found = true
					break
				}
			}
			if found {
				continue
			}
			piece := secret
			if strings.Count(secret, ".") == 2 { // a JWT: its header is common to all; look at the rest
				piece = secret[strings.Index(secret, ".")+1:]
			}
			for i := 0; i+12 <= len(piece); i++ {
				if strings.Contains(text, piece[i:i+12]) {
					hits = append(hits, fmt.Sprintf("%s (a 12-character piece at %d) in %s: %.200s", name, i, where, excerpt(text, piece[i:i+12])))
					break
				}
			}
		}
		for shape, re := range tokenShapes {
			if m := re.FindString(text); m != "" {
				hits = append(hits, fmt.Sprintf("a %s shape in %s: %.200s", shape, where, excerpt(text, m)))
			}
		}
	}
	return hits
}

func excerpt(text, needle string) string {
	i := strings.Index(text, needle)
	if i < 0 {
		return ""
	}
	from, to := max(0, i-80), min(len(text), i+len(needle)+40)
	return text[from:to]
}

// TestScanForSecretsFindsLeaks: the scanner itself finds each form of leak,
// so that a clean scan means something.
func TestScanForSecretsFindsLeaks(t *testing.T) {
	t.Parallel()
	jwt := postgresttest.SignJWT("scanner-secret-0123456789abcdef0123", "service_role", "", time.Hour)
	secrets := leakSecrets{"token": "Tok3n/With+Odd&Chars=" + randToken(alnum, 16), "jwt": jwt}
	for name, text := range map[string]string{
		"raw":       "error: " + secrets["token"],
		"query":     "GET /x?t=" + url.QueryEscape(secrets["token"]),
		"json":      `{"m":` + jsonString(secrets["token"]) + `}`,
		"truncated": "body: " + secrets["token"][:14] + "…",
		"jwt piece": "sig " + jwt[len(jwt)-20:],
		"gh shape":  "ghp_" + randToken(alnum, 36),
		"jwt shape": postgresttest.SignJWT("another-secret-0123456789abcdef0123", "anon", "", time.Hour),
	} {
		require.NotEmpty(t, scanForSecrets(secrets, map[string]string{name: text}), "the scanner missed %s", name)
	}
	require.Empty(t, scanForSecrets(secrets, map[string]string{"clean": "Authorization=[REDACTED] url=/v2/droplets"}))
}

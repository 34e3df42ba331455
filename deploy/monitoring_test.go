package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

var metricRef = regexp.MustCompile(`\bopsd_[a-z_]+`)

// definedMetrics reads the metric names the daemon registers, from the
// executor's sources.
func definedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot(t), "executor", "*.go"))
	require.NoError(t, err)
	names := map[string]bool{}
	def := regexp.MustCompile(`Name:\s*"(opsd_[a-z_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range def.FindAllStringSubmatch(string(b), -1) {
			names[m[1]] = true
		}
	}
	require.NotEmpty(t, names)
	return names
}

// checkMetrics fails for a metric an expression uses that opsd does not export.
func checkMetrics(t *testing.T, where, expr string, defined map[string]bool, used map[string]bool) {
	t.Helper()
	for _, m := range metricRef.FindAllString(expr, -1) {
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(m, suf); ok && defined[b] {
				base = b
			}
		}
		require.True(t, defined[base], "%s uses %s, which executor does not export", where, m)
		used[base] = true
	}
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRules parses the alert rules (always, promtool or not) and checks
// that the alerts the issue asks for exist, are complete, and use only
// metrics opsd exports.
func TestAlertRules(t *testing.T) {
	var rules alertRules
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, "deploy/prometheus/opsd-alerts.yml")))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&rules))
	defined := definedMetrics(t)
	used := map[string]bool{}
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			require.NotEmpty(t, r.Expr, r.Alert)
			require.NotEmpty(t, r.For, "%s: a for: keeps one bad scrape from paging", r.Alert)
			require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			require.NotEmpty(t, r.Annotations["description"], r.Alert)
			checkMetrics(t, "alert "+r.Alert, r.Expr+" "+r.Annotations["description"], defined, used)
		}
	}
	for _, want := range []string{"OpsdDown", "OpsdHeartbeatsFailing", "OpsdRunsAwaitingApproval", "OpsdRunErrorRate", "OpsdQueueStuck"} {
		require.Contains(t, names, want)
	}
}

// TestAlertRulesPromtool runs promtool's checks and the rule unit tests
// (deploy/prometheus/opsd-alerts.test.yml) when promtool is installed
// (Debian: apt-get install prometheus).
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus); TestAlertRules still parses the rules")
	}
	dir := filepath.Join(repoRoot(t), "deploy", "prometheus")
	for _, args := range [][]string{{"check", "rules", "opsd-alerts.yml"}, {"test", "rules", "opsd-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// TestGrafanaDashboard parses the dashboard and checks that every panel
// queries metrics opsd exports, and that every opsd metric is charted.
func TestGrafanaDashboard(t *testing.T) {
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Type    string `json:"type"`
			Title   string `json:"title"`
			GridPos struct {
				X, Y, W, H int
			} `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name string `json:"name"`
			} `json:"list"`
		} `json:"templating"`
	}
	require.NoError(t, json.Unmarshal([]byte(readFile(t, "deploy/grafana/opsd-dashboard.json")), &dash))
	require.NotEmpty(t, dash.UID)
	defined := definedMetrics(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	var vars []string
	for _, v := range dash.Templating.List {
		vars = append(vars, v.Name)
	}
	for _, p := range dash.Panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		require.NotEmpty(t, p.Targets, p.Title)
		require.True(t, p.GridPos.W > 0 && p.GridPos.H > 0 && p.GridPos.X+p.GridPos.W <= 24, "%s: grid position", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, p.Title)
			for _, m := range regexp.MustCompile(`\$([a-z_]+)`).FindAllStringSubmatch(tg.Expr, -1) {
				require.True(t, m[1] == "__rate_interval" || slices.Contains(vars, m[1]), "%s uses $%s, not a dashboard variable", p.Title, m[1])
			}
			checkMetrics(t, "panel "+p.Title, tg.Expr, defined, used)
		}
	}
	for m := range defined {
		require.True(t, used[m], "metric %s is on no dashboard panel", m)
	}
}

// Package config loads opsd's configuration with viper. Precedence: flags,
// then environment, then the YAML file given by --config, then defaults.
// Every option is declared once in Options, which drives the flags, the
// environment bindings, validation messages and the README's reference.
package config

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Option is one setting: its YAML key (also the flag name with '_' -> '-'),
// its environment variable, default and help.
type Option struct {
	Key     string
	Env     string
	Default any
	Help    string
	Secret  bool // never printed
}

// Options are the daemon and CLI settings. Integration settings live under
// `integrations:` (see integrations.go).
var Options = []Option{
	{Key: "database_url", Env: "DATABASE_URL", Default: "", Help: "direct PostgreSQL URL (LISTEN/NOTIFY wake-ups, fastest writes); wins over the REST settings", Secret: true},
	{Key: "supabase_url", Env: "SUPABASE_URL", Default: "", Help: "Supabase project URL for the REST (PostgREST) store, e.g. https://xyz.supabase.co"},
	{Key: "supabase_service_role_key", Env: "SUPABASE_SERVICE_ROLE_KEY", Default: "", Help: "service-role key for the REST store", Secret: true},
	{Key: "worker_id", Env: "OPSD_WORKER_ID", Default: "", Help: "worker id written to runs.claimed_by (default host-pid-random)"},
	{Key: "lanes", Env: "OPSD_LANES", Default: "A,B,C,D", Help: "lanes this daemon claims from, comma-separated"},
	{Key: "lane_concurrency", Env: "OPSD_LANE_CONCURRENCY", Default: 4, Help: "runs in flight per lane"},
	{Key: "heartbeat_interval", Env: "OPSD_HEARTBEAT_INTERVAL", Default: 3 * time.Second, Help: "lease heartbeat period (the UI calls a run dead after 10s)"},
	{Key: "stale_after", Env: "OPSD_STALE_AFTER", Default: 30 * time.Second, Help: "a run without heartbeat this long is reaped"},
	{Key: "reaper_period", Env: "OPSD_REAPER_PERIOD", Default: 10 * time.Second, Help: "how often to look for stale runs"},
	{Key: "poll_interval", Env: "OPSD_POLL_INTERVAL", Default: time.Second, Help: "poll period when idle (jittered; backs off to poll_max_interval)"},
	{Key: "poll_max_interval", Env: "OPSD_POLL_MAX_INTERVAL", Default: 10 * time.Second, Help: "longest idle poll period"},
	{Key: "shutdown_grace", Env: "OPSD_SHUTDOWN_GRACE", Default: 30 * time.Second, Help: "time in-flight runs get on SIGTERM before they are interrupted"},
	{Key: "phase_timeout", Env: "OPSD_PHASE_TIMEOUT", Default: 15 * time.Minute, Help: "default time limit of a phase (runbooks may set their own)"},
	{Key: "approval_timeout", Env: "OPSD_APPROVAL_TIMEOUT", Default: time.Hour, Help: "how long a run waits for approval before it errors"},
	{Key: "approval_envs", Env: "OPSD_APPROVAL_ENVS", Default: "prod", Help: "production environments: their deploys and writes to their targets need approval, comma-separated (\"none\" for none)"},
	{Key: "chatty_rows_per_second", Env: "OPSD_CHATTY_ROWS_PER_SECOND", Default: 10.0, Help: "coalesced log rows per second per run"},
	{Key: "artifact_max_bytes", Env: "OPSD_ARTIFACT_MAX_BYTES", Default: 256 << 10, Help: "cap of an artifact row's JSON-escaped value (at most 524288, so Realtime delivers the row); larger content goes to artifact_storage_bucket, or is truncated with a marker"},
	{Key: "artifact_storage_bucket", Env: "OPSD_ARTIFACT_STORAGE_BUCKET", Default: "", Help: "Supabase Storage bucket for artifacts over artifact_max_bytes, linked from their row (needs supabase_url and supabase_service_role_key; empty truncates them)"},
	{Key: "artifact_link_ttl", Env: "OPSD_ARTIFACT_LINK_TTL", Default: 7 * 24 * time.Hour, Help: "how long the signed link to a stored artifact stays valid"},
	{Key: "http_addr", Env: "OPSD_HTTP_ADDR", Default: "127.0.0.1:8080", Help: "address of /healthz, /readyz, /metrics and /v1/wake (empty disables)"},
	{Key: "webhook_secret", Env: "OPSD_WEBHOOK_SECRET", Default: "", Help: "bearer secret of POST /v1/wake (empty disables the endpoint)", Secret: true},
	{Key: "idle_exit", Env: "OPSD_IDLE_EXIT", Default: time.Duration(0), Help: "exit after this long with nothing in flight or claimable (Fly.io scale-to-zero); 0 never"},
	{Key: "log_level", Env: "OPSD_LOG_LEVEL", Default: "info", Help: "debug, info, warn or error"},
	{Key: "log_format", Env: "OPSD_LOG_FORMAT", Default: "json", Help: "json or console"},
}

// Config is the loaded configuration.
type Config struct {
	DatabaseURL            string                 `mapstructure:"database_url"`
	SupabaseURL            string                 `mapstructure:"supabase_url"`
	SupabaseServiceRoleKey string                 `mapstructure:"supabase_service_role_key"`
	WorkerID               string                 `mapstructure:"worker_id"`
	Lanes                  []string               `mapstructure:"-"`
	LaneConcurrency        int                    `mapstructure:"lane_concurrency"`
	HeartbeatInterval      time.Duration          `mapstructure:"heartbeat_interval"`
	StaleAfter             time.Duration          `mapstructure:"stale_after"`
	ReaperPeriod           time.Duration          `mapstructure:"reaper_period"`
	PollInterval           time.Duration          `mapstructure:"poll_interval"`
	PollMaxInterval        time.Duration          `mapstructure:"poll_max_interval"`
	ShutdownGrace          time.Duration          `mapstructure:"shutdown_grace"`
	PhaseTimeout           time.Duration          `mapstructure:"phase_timeout"`
	ApprovalTimeout        time.Duration          `mapstructure:"approval_timeout"`
	ApprovalEnvs           []string               `mapstructure:"-"`
	ChattyRowsPerSecond    float64                `mapstructure:"chatty_rows_per_second"`
	ArtifactMaxBytes       int                    `mapstructure:"artifact_max_bytes"`
	ArtifactStorageBucket  string                 `mapstructure:"artifact_storage_bucket"`
	ArtifactLinkTTL        time.Duration          `mapstructure:"artifact_link_ttl"`
	HTTPAddr               string                 `mapstructure:"http_addr"`
	WebhookSecret          string                 `mapstructure:"webhook_secret"`
	IdleExit               time.Duration          `mapstructure:"idle_exit"`
	LogLevel               string                 `mapstructure:"log_level"`
	LogFormat              string                 `mapstructure:"log_format"`
	Integrations           Integrations           `mapstructure:"integrations"`
	Notifications          Notifications          `mapstructure:"notifications"`
	Retention              Retention              `mapstructure:"retention"`
	Policy                 Policy                 `mapstructure:"policy"`
	Retries                map[string]RetryPolicy `mapstructure:"retries"`
}

// Loader binds flags, environment and file.
type Loader struct {
	v *viper.Viper
}

// NewLoader registers every option as a flag on fs (and --config).
func NewLoader(fs *pflag.FlagSet) *Loader {
	v := viper.New()
	fs.String("config", "", "YAML configuration file (flags > environment > file > defaults)")
	for _, o := range Options {
		flag := strings.ReplaceAll(o.Key, "_", "-")
		help := fmt.Sprintf("%s (env %s)", o.Help, o.Env)
		switch d := o.Default.(type) {
		case string:
			fs.String(flag, d, help)
		case int:
			fs.Int(flag, d, help)
		case float64:
			fs.Float64(flag, d, help)
		case time.Duration:
			fs.Duration(flag, d, help)
		}
		_ = v.BindPFlag(o.Key, fs.Lookup(flag))
		_ = v.BindEnv(o.Key, o.Env)
		v.SetDefault(o.Key, o.Default)
	}
	bindIntegrationEnv(v)
	bindRetentionEnv(v)
	bindPolicyEnv(v)
	return &Loader{v: v}
}

// Load reads the file named by --config (if any), then decodes and
// validates. Errors name the option and the bad value.
func (l *Loader) Load(fs *pflag.FlagSet) (*Config, error) {
	if f, _ := fs.GetString("config"); f != "" {
		l.v.SetConfigFile(f)
		l.v.SetConfigType("yaml")
		if err := l.v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("--config %s: %w", f, err)
		}
		if err := checkKeys(l.v, f); err != nil {
			return nil, err
		}
		if err := checkPolicyKeys(l.v, f); err != nil {
			return nil, err
		}
	}
	for _, o := range Options {
		if _, ok := o.Default.(time.Duration); ok {
			if _, err := parseDurationValue(l.v.Get(o.Key)); err != nil {
				return nil, fmt.Errorf("%s (env %s) = %q: %w", o.Key, o.Env, fmt.Sprint(l.v.Get(o.Key)), err)
			}
		}
	}
	if err := checkCrossEnv(l.v); err != nil {
		return nil, err
	}
	var c Config
	err := l.v.Unmarshal(&c)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	if c.Lanes, err = stringList(l.v, "lanes"); err != nil {
		return nil, err
	}
	if c.ApprovalEnvs, err = stringList(l.v, "approval_envs"); err != nil {
		return nil, err
	}
	if c.WorkerID == "" {
		c.WorkerID = DefaultWorkerID()
	}
	return &c, c.Validate()
}

func parseDurationValue(v any) (time.Duration, error) {
	switch x := v.(type) {
	case time.Duration:
		return x, nil
	case string:
		return time.ParseDuration(x)
	case int, int64, float64:
		// A bare number is ambiguous (seconds? nanoseconds?): ask for a unit.
		return 0, fmt.Errorf("a duration needs a unit, e.g. %vs or %vms", x, x)
	}
	return 0, errors.New("not a duration")
}

// stringList reads a list option given as "A,B" or as a YAML list.
func stringList(v *viper.Viper, key string) ([]string, error) {
	switch x := v.Get(key).(type) {
	case string:
		return splitList(x), nil
	case []string:
		return splitList(strings.Join(x, ",")), nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%s: list item %v is not text", key, e)
			}
			out = append(out, splitList(s)...)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%s = %v: give a comma-separated string or a list", key, x)
	}
}

// checkKeys refuses top-level keys of the file that opsd does not know, so a
// typo (approval_env for approval_envs) is an error, not a silent default.
func checkKeys(v *viper.Viper, file string) error {
	known := map[string]bool{"integrations": true, "notifications": true, "policy": true, "retention": true, "retries": true}
	for _, o := range Options {
		known[o.Key] = true
	}
	for _, k := range v.AllKeys() {
		top, _, _ := strings.Cut(k, ".")
		if err := checkRetentionKey(k, file); err != nil {
			return err
		}
		if !known[top] {
			return fmt.Errorf("--config %s: unknown option %q (see opsd run --help for the options)", file, top)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// laneName is the database's rule for runs.lane (runs_lane_guard).
var laneName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Validate reports the first bad option, naming it and its value.
func (c *Config) Validate() error {
	positive := []struct {
		key string
		v   time.Duration
	}{{"heartbeat_interval", c.HeartbeatInterval}, {"stale_after", c.StaleAfter}, {"reaper_period", c.ReaperPeriod},
		{"poll_interval", c.PollInterval}, {"poll_max_interval", c.PollMaxInterval}, {"shutdown_grace", c.ShutdownGrace},
		{"phase_timeout", c.PhaseTimeout}, {"approval_timeout", c.ApprovalTimeout}}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%s = %s: must be positive", p.key, p.v)
		}
	}
	if c.StaleAfter < 2*c.HeartbeatInterval {
		return fmt.Errorf("stale_after = %s: must be at least twice heartbeat_interval (%s)", c.StaleAfter, c.HeartbeatInterval)
	}
	if c.HeartbeatInterval >= 10*time.Second {
		return fmt.Errorf("heartbeat_interval = %s: must be under 10s, the UI calls a run dead after 10s without one", c.HeartbeatInterval)
	}
	if c.PollMaxInterval < c.PollInterval {
		return fmt.Errorf("poll_max_interval = %s: must not be below poll_interval (%s)", c.PollMaxInterval, c.PollInterval)
	}
	if c.IdleExit < 0 {
		return fmt.Errorf("idle_exit = %s: must be 0 (never) or positive", c.IdleExit)
	}
	if c.LaneConcurrency < 1 || c.LaneConcurrency > 1000 {
		return fmt.Errorf("lane_concurrency = %d: must be between 1 and 1000", c.LaneConcurrency)
	}
	if len(c.Lanes) == 0 {
		return errors.New("lanes is empty: name at least one lane, e.g. A,B,C,D")
	}
	for _, l := range c.Lanes {
		if !laneName.MatchString(l) {
			return fmt.Errorf("lanes: %q is not a lane name: use 1 to 32 letters, digits, _ or - (the database refuses runs in other lanes)", l)
		}
	}
	if c.ChattyRowsPerSecond <= 0 {
		return fmt.Errorf("chatty_rows_per_second = %g: must be positive", c.ChattyRowsPerSecond)
	}
	// The ceiling is executor.MaxArtifactRowBytes: half of Realtime's 1 MiB
	// per change, for the escaped value.
	if c.ArtifactMaxBytes < 1024 || c.ArtifactMaxBytes > 512<<10 {
		return fmt.Errorf("artifact_max_bytes = %d: must be between 1024 and 524288 (Realtime drops a change over 1 MiB)", c.ArtifactMaxBytes)
	}
	if c.ArtifactStorageBucket != "" && (c.SupabaseURL == "" || c.SupabaseServiceRoleKey == "") {
		return fmt.Errorf("artifact_storage_bucket = %q: needs supabase_url and supabase_service_role_key (env SUPABASE_SERVICE_ROLE_KEY) to reach Supabase Storage", c.ArtifactStorageBucket)
	}
	if c.ArtifactLinkTTL < time.Minute {
		return fmt.Errorf("artifact_link_ttl = %s: must be at least 1m", c.ArtifactLinkTTL)
	}
	if _, err := c.Retention.Ages(); err != nil {
		return err
	}
	if err := checkRetries(c.Retries); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level = %q: must be debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		return fmt.Errorf("log_format = %q: must be json or console", c.LogFormat)
	}
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	if c.SupabaseURL != "" {
		u, err := url.Parse(c.SupabaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("supabase_url = %q: must be an http(s) URL such as https://xyz.supabase.co", c.SupabaseURL)
		}
	}
	return nil
}

// StoreKind says which store the settings select, or an error that says
// what to set.
func (c *Config) StoreKind() (string, error) {
	switch {
	case c.DatabaseURL != "":
		return "postgres", nil
	case c.SupabaseURL != "" && c.SupabaseServiceRoleKey != "":
		return "rest", nil
	case c.SupabaseURL != "":
		return "", errors.New("supabase_url is set but supabase_service_role_key (env SUPABASE_SERVICE_ROLE_KEY) is not")
	default:
		return "", errors.New("no store configured: set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
	}
}

// Secrets lists every configured secret value, for redaction.
func (c *Config) Secrets() []string {
	out := []string{c.SupabaseServiceRoleKey, c.WebhookSecret, databasePassword(c.DatabaseURL)}
	out = append(out, c.Integrations.secrets()...)
	out = append(out, c.Notifications.secrets()...)
	return out
}

func databasePassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	p, _ := u.User.Password()
	return p
}

// DefaultWorkerID is host-pid-random.
func DefaultWorkerID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "opsd"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%x", host, os.Getpid(), b)
}

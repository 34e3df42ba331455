package executor

import (
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Config is the daemon's behaviour. Zero values take the documented defaults.
type Config struct {
	WorkerID            string        // unique per process; required
	Lanes               []string      // default A, B, C, D
	LaneConcurrency     int           // runs in flight per lane; default 4
	HeartbeatInterval   time.Duration // default 3s (the UI calls a run dead after 10s)
	StaleAfter          time.Duration // a lease without heartbeat this long is reaped; default 30s
	ReaperPeriod        time.Duration // default 10s
	PollInterval        time.Duration // first poll delay when idle; default 1s
	PollMaxInterval     time.Duration // idle polling backs off up to this; default 10s
	ShutdownGrace       time.Duration // in-flight runs get this long on shutdown; default 30s
	PhaseTimeout        time.Duration // default per phase when the runbook sets none; default 15m
	ApprovalTimeout     time.Duration // default 1h
	ChattyRowsPerSecond float64       // coalesced log rows per second per run; default 10
	ArtifactMaxBytes    int           // default 1 MiB
	IdleExit            time.Duration // exit after this long idle (Fly.io); 0 = never
	Writer              WriterConfig
	Redactor            Redactor
	Notifier            Notifier
	Maintenance         MaintenanceConfig      // schedules, retention, queue gauges (maintenance.go)
	Retries             map[string]RetryPolicy // automatic retries by kind (autoretry.go); default none
	// Policy decides from a run's targets whether it may run and whether it
	// waits for approval before its action phase; default DefaultPolicy.
	Policy *Policy
}

func (c *Config) defaults() {
	if len(c.Lanes) == 0 {
		c.Lanes = []string{"A", "B", "C", "D"}
	}
	setDefault(&c.LaneConcurrency, 4)
	setDefault(&c.HeartbeatInterval, 3*time.Second)
	setDefault(&c.StaleAfter, 30*time.Second)
	setDefault(&c.ReaperPeriod, 10*time.Second)
	setDefault(&c.PollInterval, time.Second)
	setDefault(&c.PollMaxInterval, 10*time.Second)
	setDefault(&c.ShutdownGrace, 30*time.Second)
	setDefault(&c.PhaseTimeout, 15*time.Minute)
	setDefault(&c.ApprovalTimeout, time.Hour)
	setDefault(&c.ChattyRowsPerSecond, 10)
	setDefault(&c.ArtifactMaxBytes, 1<<20)
	if c.Redactor == nil {
		c.Redactor = nopRedactor{}
	}
	if c.Policy == nil {
		c.Policy = DefaultPolicy()
	}
}

func setDefault[T int | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// laneName is the database's rule for runs.lane (runs_lane_guard).
var laneName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Validate reports the first bad setting, naming it.
func (c Config) Validate() error {
	if c.WorkerID == "" {
		return errors.New("worker id must not be empty")
	}
	if c.HeartbeatInterval > 0 && c.StaleAfter > 0 && c.StaleAfter < 2*c.HeartbeatInterval {
		return fmt.Errorf("stale-after (%s) must be at least twice the heartbeat interval (%s)", c.StaleAfter, c.HeartbeatInterval)
	}
	for _, l := range c.Lanes {
		if l == "" {
			return errors.New("lanes: empty lane name")
		}
		if !laneName.MatchString(l) {
			return fmt.Errorf("lanes: %q is not a lane name: use 1 to 32 letters, digits, _ or - (the database refuses runs in other lanes)", l)
		}
	}
	return nil
}

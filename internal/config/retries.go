package config

import (
	"fmt"
	"slices"
	"time"
)

// RetryPolicy is one kind's automatic retries, under `retries:` in the YAML
// file (no environment variables):
//
//	retries:
//	  healthcheck: {max_attempts: 3, backoff: 30s}
//
// An attempt that fails before its action phase (validate, preflight) is
// queued again after backoff, doubled per attempt; one that fails in or after
// its action phase is not retried, so side effects are never repeated.
type RetryPolicy struct {
	MaxAttempts int    `mapstructure:"max_attempts"` // attempts in all, 1 = no retry; at most 10
	Backoff     string `mapstructure:"backoff"`      // delay before the second attempt; default 30s
}

// retryKinds are the run kinds (CONTRACT.md).
var retryKinds = []string{"deploy", "healthcheck", "spec", "incident", "schema_sync"}

// RetryBackoff parses Backoff (default 30s).
func (p RetryPolicy) RetryBackoff() (time.Duration, error) {
	if p.Backoff == "" {
		return 30 * time.Second, nil
	}
	return time.ParseDuration(p.Backoff)
}

// checkRetries validates the `retries:` section, naming the key and value.
func checkRetries(r map[string]RetryPolicy) error {
	for kind, p := range r {
		if !slices.Contains(retryKinds, kind) {
			return fmt.Errorf("retries.%s: not a run kind (one of deploy, healthcheck, spec, incident, schema_sync)", kind)
		}
		if p.MaxAttempts < 1 || p.MaxAttempts > 10 {
			return fmt.Errorf("retries.%s.max_attempts = %d: must be between 1 and 10", kind, p.MaxAttempts)
		}
		d, err := p.RetryBackoff()
		if err != nil || d < time.Second || d > 24*time.Hour {
			return fmt.Errorf("retries.%s.backoff = %q: must be a duration between 1s and 24h, e.g. 30s", kind, p.Backoff)
		}
	}
	return nil
}

// Package backoff is opsd's one jittered exponential backoff: how long to wait
// before the next attempt of something that failed, and a wait that ends when
// its context does. Loops in any package can use it instead of their own.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Defaults for a zero Policy.
const (
	DefaultMin = 500 * time.Millisecond
	DefaultMax = 30 * time.Second
)

// Policy is an exponential backoff from Min doubling up to Max, with equal
// jitter: each delay is at least half its step, so retries never stampede at
// zero nor line up across processes. The zero value uses DefaultMin and DefaultMax.
type Policy struct {
	Min, Max time.Duration
}

// WithDefaults returns p with zero fields replaced by the defaults and Max
// raised to Min when it is smaller.
func (p Policy) WithDefaults() Policy {
	if p.Min <= 0 {
		p.Min = DefaultMin
	}
	if p.Max <= 0 {
		p.Max = DefaultMax
	}
	if p.Max < p.Min {
		p.Max = p.Min
	}
	return p
}

// Step is the un-jittered delay before attempt n+1 (n >= 1 is the attempt
// that just failed): Min·2^(n-1), capped at Max.
func (p Policy) Step(n int) time.Duration {
	p = p.WithDefaults()
	d := p.Min
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Delay is Step(n) with equal jitter: uniformly in [Step/2, Step].
func (p Policy) Delay(n int) time.Duration {
	d := p.Step(n)
	half := d / 2
	return half + rand.N(d-half+1)
}

// Jitter spreads a period d over [d/2, 3d/2), so loops of several processes
// (polls, reaper passes) do not run in lockstep.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d)
}

// Sleep waits d, or until ctx ends, and then returns ctx.Err().
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

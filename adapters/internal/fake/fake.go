// Package fake holds the machinery the provider fakes (verceltest, dotest,
// githubtest, supabasetest) share: a record of the requests received, a queue
// of injected failures, and a hold on an answer that ends early when the
// client goes away.
package fake

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
)

// Log records what a fake received, in order. The zero value is ready to use
// and safe for concurrent use.
type Log[R any] struct {
	mu   sync.Mutex
	list []R
}

// Add appends r and returns how many entries the log holds, r included.
func (l *Log[R]) Add(r R) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, r)
	return len(l.list)
}

// All returns a copy of the entries so far.
func (l *Log[R]) All() []R {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]R(nil), l.list...)
}

// Count returns how many entries satisfy match.
func (l *Log[R]) Count(match func(R) bool) int {
	n := 0
	for _, r := range l.All() {
		if match(r) {
			n++
		}
	}
	return n
}

// Failures queues injected failures of a fake's own type F, matched in the
// order they were added. The zero value is ready to use and safe for
// concurrent use.
type Failures[F any] struct {
	mu   sync.Mutex
	list []*pending[F]
}

type pending[F any] struct {
	method, prefix string
	left           int // uses left; negative means unlimited
	f              F
}

// Add queues f for requests with this method ("" matches any) whose path
// starts with prefix. It answers times requests: 0 counts as 1, a negative
// number means every matching request.
func (q *Failures[F]) Add(method, prefix string, times int, f F) {
	if times == 0 {
		times = 1
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = append(q.list, &pending[F]{method: method, prefix: prefix, left: times, f: f})
}

// Take uses up one answer of the first queued failure matching the request
// and returns a copy of it, or nil when none matches.
func (q *Failures[F]) Take(method, path string) *F {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, p := range q.list {
		if (p.method != "" && p.method != method) || !strings.HasPrefix(path, p.prefix) {
			continue
		}
		if p.left > 0 {
			p.left--
			if p.left == 0 {
				q.list = append(q.list[:i], q.list[i+1:]...)
			}
		}
		f := p.f
		return &f
	}
	return nil
}

// Hold waits d before an answer. It reports false if ctx (the request's
// context) ended first, in which case the fake should not answer at all.
func Hold(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Options returns adapter options that reach a fake at baseURL with token and
// millisecond backoffs, so retries do not slow tests down.
func Options(token, baseURL string) adapters.Options {
	return adapters.Options{
		Token:      token,
		BaseURL:    baseURL,
		Timeout:    5 * time.Second,
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
}

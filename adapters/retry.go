package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/internal/backoff"
)

// This file is the one place that knows how each provider says "wait": the
// headers and bodies of its rate-limit answers, Retry-After, and resets. The
// transport uses it for its short retries; adapters' poll loops use Policy
// to wait out longer limits within what their phase allows.

// DefaultSecondaryWait is how long to wait after a GitHub secondary rate
// limit that names no time: GitHub asks for at least one minute.
const DefaultSecondaryWait = time.Minute

// maxPeek bounds how much of an error body is read to learn a wait.
const maxPeek = 64 << 10

// Limit is what a provider's answer says about waiting.
type Limit struct {
	// RateLimited: the answer is a rate limit (429, or a provider's 403
	// rate limit), not a refusal; repeating the request later can succeed.
	RateLimited bool
	// Secondary: a GitHub secondary (abuse) limit rather than the hourly quota.
	Secondary bool
	// Wait is how long the provider asks to wait; 0 when it does not say.
	Wait time.Duration
}

// ProviderLimit reads a failed response of adapter ("github", "vercel",
// "digitalocean", ...) with its body (or the first part of it):
//   - every provider: Retry-After (seconds or HTTP-date), then X-RateLimit-Reset
//     or RateLimit-Reset (unix time or delay) on a 429;
//   - github: a 403 or 429 with x-ratelimit-remaining: 0 is the primary limit,
//     over at x-ratelimit-reset; one whose message mentions a secondary rate
//     limit, or that carries Retry-After, is the secondary limit, with
//     Retry-After or else at least DefaultSecondaryWait; any other 403 is a
//     refusal;
//   - vercel: a 429 without headers may carry error.limit.reset (unix seconds)
//     or error.limit.resetMs in its body.
func ProviderLimit(adapter string, resp *http.Response, body []byte, now time.Time) Limit {
	if resp == nil {
		return Limit{}
	}
	h := resp.Header
	switch adapter {
	case "github":
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
			return Limit{}
		}
		secondary := h.Get("Retry-After") != "" || strings.Contains(strings.ToLower(string(body)), "secondary rate limit")
		switch {
		case secondary:
			// retry-after, else the reset when the quota is spent too, else
			// at least a minute; x-ratelimit-reset alone is the quota's.
			l := Limit{RateLimited: true, Secondary: true}
			if h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0" {
				l.Wait = RetryAfter(h, now)
			}
			if l.Wait == 0 {
				l.Wait = DefaultSecondaryWait
			}
			return l
		case h.Get("X-RateLimit-Remaining") == "0":
			return Limit{RateLimited: true, Wait: RetryAfter(h, now)}
		case resp.StatusCode == http.StatusTooManyRequests:
			return Limit{RateLimited: true, Wait: DefaultSecondaryWait, Secondary: true}
		}
		return Limit{}
	case "vercel":
		if resp.StatusCode != http.StatusTooManyRequests {
			return Limit{}
		}
		l := Limit{RateLimited: true, Wait: RetryAfter(h, now)}
		if l.Wait == 0 {
			l.Wait = vercelBodyReset(body, now)
		}
		return l
	}
	if resp.StatusCode != http.StatusTooManyRequests {
		return Limit{}
	}
	return Limit{RateLimited: true, Wait: RetryAfter(h, now)}
}

// vercelBodyReset reads Vercel's documented rate-limit error body,
// {"error":{"code":"rate_limited","limit":{"remaining":0,"reset":<unix s>,"resetMs":<unix ms>,"total":N}}}.
func vercelBodyReset(body []byte, now time.Time) time.Duration {
	var b struct {
		Error struct {
			Limit *struct {
				Reset   int64 `json:"reset"`
				ResetMs int64 `json:"resetMs"`
			} `json:"limit"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil || b.Error.Limit == nil {
		return 0
	}
	var at time.Time
	switch l := b.Error.Limit; {
	case l.ResetMs > 1_000_000_000_000:
		at = time.UnixMilli(l.ResetMs)
	case l.Reset > 1_000_000_000:
		at = time.Unix(l.Reset, 0)
	default:
		return 0
	}
	return min(max(at.Sub(now), 0), maxRetryAfterSecs*time.Second)
}

// DefaultMaxWait is the longest a poll loop waits out one rate limit when
// its Policy sets no MaxWait; the phase's deadline may allow less.
const DefaultMaxWait = 15 * time.Minute

// Policy is how an adapter's poll loop (waiting for a workflow run, a
// deployment, a droplet) rides out temporary failures: it waits as long as
// the provider asks (a rate-limit reset, Retry-After), else a jittered
// backoff, but never past the context's deadline (the phase's timeout) nor
// longer than MaxWait, and then it fails with the provider's error instead.
type Policy struct {
	// Backoff spaces attempts when the provider names no wait. Zero: 500ms to 30s.
	Backoff backoff.Policy
	// MaxWait caps one wait for a provider-named reset. Default DefaultMaxWait.
	MaxWait time.Duration
}

// Pause waits before attempt n+1 after err, the failure of attempt n. It
// returns nil when the caller should try again, or an error (wrapping err)
// when err is not temporary or the wait would end past ctx's deadline or
// exceed MaxWait, or ctx ended while waiting.
func (p Policy) Pause(ctx context.Context, n int, err error) error {
	if !IsTemporary(err) {
		return err
	}
	wait := RetryAfterOf(err)
	if wait <= 0 {
		wait = p.Backoff.Delay(n)
	}
	maxWait := p.MaxWait
	if maxWait <= 0 {
		maxWait = DefaultMaxWait
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return &WaitTooLongError{Wait: wait, Limit: max(time.Until(dl), 0), Deadline: true, Err: err}
	}
	if wait > maxWait {
		return &WaitTooLongError{Wait: wait, Limit: maxWait, Err: err}
	}
	if serr := backoff.Sleep(ctx, wait); serr != nil {
		return fmt.Errorf("waiting %s after %w: %w", wait.Round(time.Millisecond), err, serr)
	}
	return nil
}

// WaitTooLongError reports a provider asking to wait longer than allowed.
type WaitTooLongError struct {
	Wait     time.Duration // what the provider asked for
	Limit    time.Duration // what was left or allowed
	Deadline bool          // Limit is the time left before the phase's deadline
	Err      error         // the provider's error
}

func (e *WaitTooLongError) Error() string {
	if e.Deadline {
		return fmt.Sprintf("%v: the provider asks to wait %s, past this phase's deadline (%s left)",
			e.Err, e.Wait.Round(time.Second), e.Limit.Round(time.Second))
	}
	return fmt.Sprintf("%v: the provider asks to wait %s, longer than the %s an adapter waits for a rate limit",
		e.Err, e.Wait.Round(time.Second), e.Limit)
}

func (e *WaitTooLongError) Unwrap() error { return e.Err }

// RetryAfterOf is how long err (or what it wraps) asks to wait, 0 if it does not say.
func RetryAfterOf(err error) time.Duration {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.RetryAfter
	}
	return 0
}

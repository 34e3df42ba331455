// Package adapters holds what every provider adapter (Vercel, GitHub,
// DigitalOcean, Supabase, plain HTTP checks) shares: options, an HTTP client
// with per-attempt timeouts, retries and call recording, the typed API error
// that vendor errors are translated into, and the SSRF guard for URLs that
// come from run inputs.
package adapters

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Call is one HTTP request an adapter made; reported per attempt to the run as an event.
type Call struct {
	Adapter  string        // adapter name, e.g. "vercel"
	Method   string        // HTTP method
	Path     string        // URL path only: no host, no query string, never a token
	Status   int           // HTTP status, 0 when no response was received
	Duration time.Duration // time until the response headers (or the error)
	Attempt  int           // 1 for the first try, 2 for the first retry, ...
	Err      error         // transport error, nil when a response was received
}

// Recorder receives calls. The executor wires it to the run's event emitter.
type Recorder interface {
	RecordCall(ctx context.Context, c Call)
}

// RecorderFunc adapts a function to a Recorder.
type RecorderFunc func(ctx context.Context, c Call)

// RecordCall calls f.
func (f RecorderFunc) RecordCall(ctx context.Context, c Call) { f(ctx, c) }

type recorderKey struct{}

type idempotentKey struct{}

// WithRecorder returns a context whose HTTP calls are reported to r.
func WithRecorder(ctx context.Context, r Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

// RecorderFrom returns the context's Recorder, or a no-op Recorder; never nil.
func RecorderFrom(ctx context.Context) Recorder {
	if r, ok := ctx.Value(recorderKey{}).(Recorder); ok && r != nil {
		return r
	}
	return nopRecorder{}
}

type nopRecorder struct{}

func (nopRecorder) RecordCall(context.Context, Call) {}

// Idempotent marks ctx so that requests made with it are retried like GETs,
// for POSTs the caller knows are safe to repeat (e.g. carrying an idempotency key).
func Idempotent(ctx context.Context) context.Context {
	return context.WithValue(ctx, idempotentKey{}, true)
}

func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	v, _ := req.Context().Value(idempotentKey{}).(bool)
	return v
}

// Defaults for Options fields left at their zero value.
const (
	DefaultTimeout    = 30 * time.Second
	DefaultMaxRetries = 3
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// Options common to every adapter; zero values mean the documented defaults.
type Options struct {
	// Token is the API token; never logged, never in a Call. Each adapter reads it
	// from its own environment variable (VERCEL_TOKEN, DIGITALOCEAN_TOKEN, ...).
	Token string
	// BaseURL is the provider API base URL (override for tests / enterprise).
	// Default: the provider's public API.
	BaseURL string
	// Timeout bounds one HTTP attempt, including reading the body. Default 30s.
	Timeout time.Duration
	// MaxRetries is how often idempotent calls are retried on 429, 5xx and
	// network errors. Default 3; negative means no retries.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the jittered exponential backoff between
	// attempts. Defaults 500ms and 30s. A Retry-After header wins, capped at MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// HTTPClient is an optional base client; its Transport is wrapped.
	HTTPClient *http.Client
}

// WithDefaults returns o with zero values replaced by the documented defaults
// (MaxRetries stays negative when it was negative).
func (o Options) WithDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	return o
}

// ErrNotConfigured reports a missing integration setting; adapters wrap it as
// fmt.Errorf("vercel: %w: set VERCEL_TOKEN", ErrNotConfigured).
var ErrNotConfigured = errors.New("integration not configured")

// APIError is a provider's error response, translated at the adapter boundary.
type APIError struct {
	Adapter    string
	Method     string
	Path       string // URL path only
	Status     int
	Code       string // provider error code, e.g. "not_found"
	Message    string
	RetryAfter time.Duration // from Retry-After / rate-limit headers, 0 if absent
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s: %d", e.Adapter, e.Method, e.Path, e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	switch {
	case e.Message != "":
		b.WriteString(": " + e.Message)
	case e.Status != 0:
		b.WriteString(" " + http.StatusText(e.Status))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// Temporary reports whether the call may succeed later: 429 and 5xx.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// NewAPIError builds the APIError for a failed response: method and path from
// resp.Request (path only), status, and how long to wait when the response is a
// 429 or carries Retry-After. Adapters fill Code and Message from their error body.
func NewAPIError(adapter string, resp *http.Response, code, message string) *APIError {
	e := &APIError{Adapter: adapter, Status: resp.StatusCode, Code: code, Message: message}
	if resp.Request != nil {
		e.Method = resp.Request.Method
		if resp.Request.URL != nil {
			e.Path = resp.Request.URL.Path
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "" {
		e.RetryAfter = RetryAfter(resp.Header, time.Now())
	}
	return e
}

// IsNotFound reports whether err is (or wraps) an APIError with status 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// IsTemporary reports whether err is (or wraps) an error that says it is
// temporary, such as an APIError for a 429 or 5xx.
func IsTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// maxRetryAfterSecs caps parsed delays (a day) so a huge header value cannot
// overflow time.Duration into a negative or tiny wait.
const maxRetryAfterSecs = 86400

// RetryAfter returns how long a response asks the client to wait: Retry-After
// (delay-seconds or HTTP-date), else a rate-limit reset header (X-RateLimit-Reset
// or RateLimit-Reset, unix seconds or delta seconds). 0 when none applies.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Duration(min(max(secs, 0), maxRetryAfterSecs)) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(t.Sub(now), 0)
		}
		return 0
	}
	for _, k := range []string{"X-RateLimit-Reset", "RateLimit-Reset"} {
		v := strings.TrimSpace(h.Get(k))
		if v == "" {
			continue
		}
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs < 0 {
			continue
		}
		// Providers disagree: GitHub, Vercel and DigitalOcean send a unix time,
		// the IETF draft a delay. A value past 2001 can only be a unix time.
		if secs > 1_000_000_000 {
			return max(time.Unix(secs, 0).Sub(now), 0)
		}
		return time.Duration(secs) * time.Second
	}
	return 0
}

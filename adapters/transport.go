package adapters

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"
)

// NewHTTPClient returns an *http.Client whose transport bounds each attempt by
// o.Timeout, retries idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, or a
// context marked with Idempotent) on 429, 5xx and network errors, stops waiting as
// soon as the request context is cancelled, and reports every attempt to
// RecorderFrom(req.Context()). After the last attempt the final response (even a
// 429 or 5xx) is returned for the adapter to translate into an *APIError.
func NewHTTPClient(adapter string, o Options) *http.Client {
	o = o.WithDefaults()
	var c http.Client
	if o.HTTPClient != nil {
		c = *o.HTTPClient
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	// The per-attempt timeout replaces the client-wide one, which would otherwise
	// cap the sum of all attempts and backoffs.
	c.Timeout = 0
	c.Transport = &retryTransport{adapter: adapter, base: base, opts: o, now: time.Now}
	return &c
}

// retryTransport is the http.RoundTripper behind NewHTTPClient.
type retryTransport struct {
	adapter string
	base    http.RoundTripper
	opts    Options
	now     func() time.Time
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	retries := 0
	if isIdempotent(req) && replayable(req) {
		retries = max(t.opts.MaxRetries, 0)
	}
	for attempt := 1; ; attempt++ {
		resp, err := t.attempt(req, attempt)
		if ctx.Err() != nil {
			// The caller gave up: report its reason, not the transport's.
			if resp != nil {
				discard(resp)
			}
			return nil, ctx.Err()
		}
		if attempt > retries || !shouldRetry(resp, err) {
			return resp, err
		}
		wait := t.backoff(attempt, resp)
		if resp != nil {
			discard(resp)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// attempt performs one try under its own timeout and records it.
func (t *retryTransport) attempt(req *http.Request, n int) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(req.Context(), t.opts.Timeout)
	r := req.Clone(ctx)
	if n > 1 && req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			cancel()
			return nil, err
		}
		r.Body = body
	}
	start := t.now()
	resp, err := t.base.RoundTrip(r)
	call := Call{
		Adapter:  t.adapter,
		Method:   req.Method,
		Path:     req.URL.Path,
		Duration: t.now().Sub(start),
		Attempt:  n,
	}
	if err != nil {
		cancel()
		call.Err = redact(err)
		RecorderFrom(req.Context()).RecordCall(req.Context(), call)
		return nil, err
	}
	call.Status = resp.StatusCode
	RecorderFrom(req.Context()).RecordCall(req.Context(), call)
	// The attempt's deadline also covers reading the body, so it is released
	// only when the caller closes it.
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// backoff returns the wait before attempt n+1: the server's Retry-After (or
// rate-limit reset on a 429) when given, else jittered exponential backoff;
// always capped at MaxBackoff.
func (t *retryTransport) backoff(n int, resp *http.Response) time.Duration {
	if resp != nil && (resp.StatusCode == http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "") {
		if d := RetryAfter(resp.Header, t.now()); d > 0 {
			return min(d, t.opts.MaxBackoff)
		}
	}
	d := t.opts.MinBackoff
	for i := 1; i < n && d < t.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, t.opts.MaxBackoff)
	// Equal jitter: at least half the step, so retries never stampede at zero.
	half := d / 2
	return half + rand.N(d-half+1)
}

func shouldRetry(resp *http.Response, err error) bool {
	if err != nil {
		return true
	}
	return resp.StatusCode == http.StatusTooManyRequests ||
		(resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented)
}

// replayable reports whether the request body can be sent again.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// discard drains a little of a response we will not use, so the connection can
// be reused, and closes it.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}

// redact strips the URL (which may carry a query string) from a transport error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: ue.Err}
	}
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	return u.Path
}

// cancelBody releases an attempt's context once the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

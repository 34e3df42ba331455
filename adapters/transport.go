package adapters

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/opscontrolroom/opsd/internal/backoff"
)

// NewHTTPClient returns an *http.Client whose transport bounds each attempt by
// o.Timeout, retries idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, or a
// context marked with Idempotent) on 429, 5xx and network errors, stops waiting as
// soon as the request context is cancelled, and reports every attempt to
// RecorderFrom(req.Context()). Rate limits are read the way each provider
// documents them (ProviderLimit): a named wait up to MaxBackoff is waited out,
// a longer one returns the answer at once for a caller with a longer budget
// (Policy). After the last attempt the final response (even a 429 or 5xx) is
// returned for the adapter to translate into an *APIError.
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
		limit := t.limit(resp)
		if attempt > retries || !shouldRetry(resp, err, limit) {
			return resp, err
		}
		wait := t.backoff(attempt, resp)
		if limit.Wait > 0 {
			if limit.Wait > t.opts.MaxBackoff {
				// The provider asks for longer than an inline retry may wait:
				// hand its answer to the adapter, whose error carries the wait
				// for a caller that can afford it (see Policy).
				return resp, nil
			}
			wait = limit.Wait
		}
		if resp != nil {
			discard(resp)
		}
		if err := backoff.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// limit reads what a 403 or 429 answer says about waiting (ProviderLimit),
// peeking at the start of its body and putting it back for the adapter.
func (t *retryTransport) limit(resp *http.Response) Limit {
	if resp == nil || (resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests) {
		return Limit{}
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxPeek))
	resp.Body = &peekedBody{Reader: io.MultiReader(bytes.NewReader(head), resp.Body), Closer: resp.Body}
	return ProviderLimit(t.adapter, resp, head, t.now())
}

// peekedBody is a response body whose start was read and put back.
type peekedBody struct {
	io.Reader
	io.Closer
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

// backoff returns the wait before attempt n+1 when the provider named no
// rate-limit wait: a Retry-After header (e.g. on a 503), else jittered
// exponential backoff; always capped at MaxBackoff.
func (t *retryTransport) backoff(n int, resp *http.Response) time.Duration {
	if resp != nil && resp.Header.Get("Retry-After") != "" {
		if d := RetryAfter(resp.Header, t.now()); d > 0 {
			return min(d, t.opts.MaxBackoff)
		}
	}
	return backoff.Policy{Min: t.opts.MinBackoff, Max: t.opts.MaxBackoff}.Delay(n)
}

// shouldRetry: network errors, 5xx but 501, 429, and what a provider
// documents as a rate limit (GitHub answers some with 403).
func shouldRetry(resp *http.Response, err error, limit Limit) bool {
	if err != nil {
		return true
	}
	return resp.StatusCode == http.StatusTooManyRequests || limit.RateLimited ||
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

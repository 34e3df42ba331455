// Package httpcheck probes an HTTP endpoint once and reports status and
// latency, for runbook steps such as "is the site up after the deploy". URLs
// that come from run inputs go through a Checker, whose URLPolicy keeps probes
// away from private, loopback and metadata addresses.
package httpcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
)

// Name is the adapter name used in recorded calls.
const Name = "httpcheck"

// DefaultTimeout bounds a check when no timeout is given.
const DefaultTimeout = 10 * time.Second

// maxBody is how much of the response body a check reads (and times).
const maxBody = 1 << 20

// Result is the outcome of one check.
type Result struct {
	URL     string        // the URL checked, password redacted
	Status  int           // HTTP status of the final response; 0 if none
	Latency time.Duration // until headers and up to 1 MiB of body were received
	OK      bool          // Status matched the expectation
	Err     string        // why the check failed; "" when OK
}

// Check GETs rawURL once (redirects followed) with client (http.DefaultClient
// if nil) within timeout (DefaultTimeout if <= 0) and reports whether the
// final status is expect, or any 2xx when expect is 0. It never retries: a
// health check that retries hides the failure it exists to find. Use it only
// for URLs from configuration; URLs from run inputs go through a Checker.
func Check(ctx context.Context, client *http.Client, rawURL string, timeout time.Duration, expect int) Result {
	res := Result{URL: redactURL(rawURL)}
	if client == nil {
		client = http.DefaultClient
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		res.Err = fmt.Sprintf("invalid URL: %v", unwrap(err))
		return res
	}
	req.Header.Set("User-Agent", "opsd-httpcheck")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		res.Latency = time.Since(start)
		res.Err = describe(ctx, err, timeout)
		return res
	}
	defer resp.Body.Close()
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	res.Latency = time.Since(start)
	res.Status = resp.StatusCode
	switch {
	case rerr != nil:
		res.Err = "reading body: " + describe(ctx, rerr, timeout)
	case expect == 0 && (resp.StatusCode < 200 || resp.StatusCode > 299):
		res.Err = fmt.Sprintf("status %d, want 2xx", resp.StatusCode)
	case expect != 0 && resp.StatusCode != expect:
		res.Err = fmt.Sprintf("status %d, want %d", resp.StatusCode, expect)
	default:
		res.OK = true
	}
	return res
}

// Checker checks URLs that come from run inputs or templates: each URL, each
// redirect and each connection is held to Policy.
type Checker struct {
	policy    adapters.URLPolicy
	client    *http.Client
	transport *http.Transport
	timeout   time.Duration
}

// NewChecker returns a Checker guarded by policy whose checks take at most
// timeout (DefaultTimeout if <= 0). Calls are recorded as adapter "httpcheck".
// Close releases its idle connections.
func NewChecker(policy adapters.URLPolicy, timeout time.Duration) *Checker {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := policy.Transport()
	client := adapters.NewHTTPClient(Name, adapters.Options{
		Timeout:    timeout,
		MaxRetries: -1,
		HTTPClient: &http.Client{Transport: tr},
	})
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return policy.Check(req.Context(), req.URL.String())
	}
	return &Checker{policy: policy, client: client, transport: tr, timeout: timeout}
}

// Check refuses rawURL if the policy does, and otherwise checks it like Check.
func (c *Checker) Check(ctx context.Context, rawURL string, expect int) Result {
	if err := c.policy.Check(ctx, rawURL); err != nil {
		return Result{URL: redactURL(rawURL), Err: err.Error()}
	}
	return Check(ctx, c.client, rawURL, c.timeout, expect)
}

// Close releases the Checker's idle connections.
func (c *Checker) Close() { c.transport.CloseIdleConnections() }

// describe words a request error for an operator, without the URL that
// *url.Error repeats.
func describe(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return fmt.Sprintf("timeout after %s", timeout)
	}
	return unwrap(err).Error()
}

func unwrap(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

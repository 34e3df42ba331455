// The PostgREST client behind Store. It speaks the subset of PostgREST
// opsd needs, as documented by PostgREST and Supabase (pages followed):
//
//   - https://docs.postgrest.org/en/latest/references/api/tables_views.html
//     (filters, order, limit, bulk insert, upsert with on_conflict)
//   - https://docs.postgrest.org/en/latest/references/api/preferences.html
//     (Prefer: return=minimal|representation, resolution=ignore-duplicates|merge-duplicates)
//   - https://docs.postgrest.org/en/latest/references/api/functions.html
//     (POST /rpc/<fn> with named arguments, array arguments, result shapes)
//   - https://docs.postgrest.org/en/latest/references/errors.html
//     (the JSON error body and the HTTP status of each SQLSTATE and PGRST code)
//   - https://docs.postgrest.org/en/latest/references/auth.html and
//     https://supabase.com/docs/guides/api/api-keys (apikey header, bearer JWT,
//     the service_role key)
//
// Retries follow one rule: a request is repeated only when repeating it
// cannot do harm. Reads, idempotent writes (event batches with
// on_conflict=run_id,seq and ignore-duplicates, step and spec-doc upserts,
// heartbeats), writes fenced by a lease, and the claim (it carries a claim
// token: replaying the token returns the runs it claimed) are retried on any
// transient failure. Plain inserts (SubmitRun, PutArtifact) are retried only
// when the request surely never reached the server (dial and DNS errors).

package reststore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/backoff"
)

const (
	restDefaultTimeout    = 10 * time.Second
	restDefaultMaxRetries = 3
	// restRetryBase and restRetryCap shape the jittered exponential backoff.
	restRetryBase = 200 * time.Millisecond
	restRetryCap  = 5 * time.Second
	// restMaxRetryAfter is the longest Retry-After a call waits out; a longer one
	// fails the call (as transient) and leaves the wait to the caller's loop.
	restMaxRetryAfter = 30 * time.Second
	// restMaxResponse bounds a response body.
	restMaxResponse = 32 << 20
)

// Config configures New.
type Config struct {
	// URL is the Supabase project URL (https://<ref>.supabase.co); the REST
	// API is URL+"/rest/v1". Required. Environment: SUPABASE_URL.
	URL string
	// ServiceRoleKey is sent as the apikey header and the bearer token. It is
	// never logged. Required. Environment: SUPABASE_SERVICE_ROLE_KEY.
	ServiceRoleKey string
	// HTTPClient, when set, is used as it is. Default: a client with a
	// keep-alive pool sized for one host that uses HTTP/2 when the server
	// offers it.
	HTTPClient *http.Client
	// Timeout bounds each HTTP request (each attempt of a call). Default 10s.
	// Environment: OPSD_REST_TIMEOUT.
	Timeout time.Duration
	// MaxRetries is how many times a call that is safe to repeat is retried
	// after a transient failure. Default 3; negative means never.
	// Environment: OPSD_REST_MAX_RETRIES.
	MaxRetries int
	// Logger receives a warning per retry. Default: no logging.
	Logger *zap.Logger
}

// restRetryPolicy says when a failed call may be sent again.
type restRetryPolicy int

const (
	// restRetrySafe: the call is idempotent (or fenced, or token-deduplicated),
	// so any transient failure may be retried.
	restRetrySafe restRetryPolicy = iota
	// restRetryUnsent: the call is a plain insert; retry only failures where the
	// request surely never reached the server.
	restRetryUnsent
)

// restRequest is one logical call.
type restRequest struct {
	op     string // for errors and logs, e.g. "claim_run"
	method string
	path   string // under /rest/v1, e.g. "runs" or "rpc/claim_run"
	query  url.Values
	body   any
	prefer string
	policy restRetryPolicy
}

type restClient struct {
	base       string // project URL + "/rest/v1/"
	key        string
	hc         *http.Client
	transport  *http.Transport // ours to close, nil when the caller gave HTTPClient
	timeout    time.Duration
	maxRetries int
	log        *zap.Logger
}

func newRESTClient(cfg Config) (*restClient, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("supabase REST: URL %q is not an http(s) project URL", cfg.URL)
	}
	if cfg.ServiceRoleKey == "" {
		return nil, errors.New("supabase REST: the service-role key is required")
	}
	c := &restClient{
		base:       u.String() + "/rest/v1/",
		key:        cfg.ServiceRoleKey,
		hc:         cfg.HTTPClient,
		timeout:    cfg.Timeout,
		maxRetries: cfg.MaxRetries,
		log:        cfg.Logger,
	}
	if c.timeout <= 0 {
		c.timeout = restDefaultTimeout
	}
	switch {
	case c.maxRetries == 0:
		c.maxRetries = restDefaultMaxRetries
	case c.maxRetries < 0:
		c.maxRetries = 0
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	if c.hc == nil {
		c.transport = newRESTTransport()
		c.hc = &http.Client{Transport: c.transport}
	}
	return c, nil
}

// newRESTTransport is a keep-alive pool for one host: the daemon's calls
// (heartbeats, event batches, claims per lane) go to the same project.
func newRESTTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

func (c *restClient) close() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

// restAttemptError is a failed attempt: a transport error or an HTTP error answer.
type restAttemptError struct {
	err        *executor.StoreError
	unsent     bool          // the request surely never reached the server
	retryAfter time.Duration // from a Retry-After header
}

// do runs r, retrying as its policy allows, and decodes a successful JSON
// answer into out (when out is not nil). retried reports that an earlier
// attempt may have executed, for callers whose answer changes on a replay.
func (c *restClient) do(ctx context.Context, r restRequest, out any) (retried bool, err error) {
	var payload []byte
	if r.body != nil {
		if payload, err = json.Marshal(r.body); err != nil {
			return false, &executor.StoreError{Kind: executor.ErrInvalidInput, Op: r.op, Message: "encode request: " + err.Error(), Err: err}
		}
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return retried, fmt.Errorf("%s: %w", r.op, err)
		}
		body, aerr := c.once(ctx, r, payload)
		if aerr == nil {
			if out != nil && len(bytes.TrimSpace(body)) > 0 {
				if err := json.Unmarshal(body, out); err != nil {
					return retried, &executor.StoreError{Kind: executor.ErrInvalidInput, Op: r.op, Message: "decode response: " + err.Error(), Err: err}
				}
			}
			return retried, nil
		}
		if err := ctx.Err(); err != nil {
			// The caller gave up: report that, not the transport's view of it.
			return retried, fmt.Errorf("%s: %w", r.op, err)
		}
		if !aerr.unsent {
			retried = true
		}
		retryable := errors.Is(aerr.err, executor.ErrTransient) && (r.policy == restRetrySafe || aerr.unsent)
		if !retryable || attempt >= c.maxRetries || aerr.retryAfter > restMaxRetryAfter {
			return retried, aerr.err
		}
		wait := backoff.Policy{Min: restRetryBase, Max: restRetryCap}.Delay(attempt + 1)
		if aerr.retryAfter > 0 {
			wait = aerr.retryAfter
		}
		c.log.Warn("supabase REST call failed, retrying",
			zap.String("op", r.op), zap.Int("attempt", attempt+1), zap.Duration("backoff", wait), zap.Error(aerr.err))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return retried, fmt.Errorf("%s: %w", r.op, ctx.Err())
		case <-t.C:
		}
	}
}

// once sends one attempt, bounded by the per-request timeout.
func (c *restClient) once(ctx context.Context, r restRequest, payload []byte) ([]byte, *restAttemptError) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, r.method, u, rd)
	if err != nil {
		return nil, &restAttemptError{err: &executor.StoreError{Kind: executor.ErrInvalidInput, Op: r.op, Message: err.Error(), Err: err}}
	}
	req.Header.Set("apikey", c.key)
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.prefer != "" {
		req.Header.Set("Prefer", r.prefer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, restTransportError(r.op, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, restMaxResponse))
	_ = resp.Body.Close()
	if err != nil {
		return nil, restTransportError(r.op, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return body, nil
	}
	return nil, &restAttemptError{err: restError(r.op, resp.StatusCode, body), retryAfter: restParseRetryAfter(resp.Header.Get("Retry-After"))}
}

// restTransportError is a failure below HTTP: always transient; unsent when it
// happened while connecting, before any byte of the request left.
func restTransportError(op string, err error) *restAttemptError {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	unsent := errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial")
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error() // the URL is known; keep the message short
	}
	return &restAttemptError{
		err:    &executor.StoreError{Kind: executor.ErrTransient, Op: op, Message: msg, Err: err},
		unsent: unsent,
	}
}

// restError translates a PostgREST error answer (status and JSON body) into
// the store's typed error.
func restError(op string, status int, body []byte) *executor.StoreError {
	var pe struct {
		Code    string  `json:"code"`
		Message string  `json:"message"`
		Details *string `json:"details"`
		Hint    *string `json:"hint"`
	}
	_ = json.Unmarshal(body, &pe) // gateways answer HTML or nothing at all
	se := &executor.StoreError{Kind: restErrorKind(status, pe.Code), Op: op, Code: pe.Code, Message: pe.Message, Status: status}
	if se.Code == "" {
		se.Code = strconv.Itoa(status)
	}
	if se.Message == "" {
		se.Message = http.StatusText(status)
		if s := strings.TrimSpace(string(body)); s != "" {
			se.Message += ": " + restTruncate(s, 200)
		}
	}
	if pe.Details != nil && *pe.Details != "" {
		se.Message += " (" + *pe.Details + ")"
	}
	return se
}

// restErrorKind maps PostgREST's status (and, where the status is ambiguous, the
// SQLSTATE or PGRST code) to the store's error kinds.
func restErrorKind(status int, code string) error {
	switch code {
	case "40001", "40P01": // serialization failure, deadlock: retry
		return executor.ErrTransient
	case "42501":
		return executor.ErrPermission
	case "23505", "23503":
		return executor.ErrConflict
	case "PGRST116", // singular response with zero (or several) rows
		"P0002": // no_data_found: a function's "no such row" (PostgREST answers 500)
		return executor.ErrNotFound
	}
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return executor.ErrPermission
	case status == http.StatusNotFound || status == http.StatusNotAcceptable:
		return executor.ErrNotFound
	case status == http.StatusConflict:
		return executor.ErrConflict
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		return executor.ErrTransient
	}
	return executor.ErrInvalidInput
}

// restParseRetryAfter reads delay-seconds or an HTTP date.
func restParseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 {
		// Anything past a day is "too long to wait" either way; capping it
		// first keeps a huge value from overflowing into a negative wait.
		return time.Duration(min(n, 86400)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

func restTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

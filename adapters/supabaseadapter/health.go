// Package supabaseadapter is opsd's adapter for a Supabase project: the
// health of its HTTP services (PostgREST, Auth, Storage and a ping() RPC),
// and, for the schema_sync runbook, introspection of a Postgres schema,
// a deterministic diff of two schemas and a suggested migration.
//
// Its name says "adapter" so it reads apart from the store packages under
// supabase/ (pgstore, reststore, migrations) at call sites that import both.
package supabaseadapter

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
)

// Name is the adapter name used in calls, errors and logs.
const Name = "supabase"

// Client checks one Supabase project.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// New returns a Client. o.BaseURL is the project URL (SUPABASE_URL, e.g.
// https://xyz.supabase.co) and o.Token an API key (SUPABASE_SERVICE_ROLE_KEY,
// or the anon key), sent both as apikey and as the bearer token, which is what
// the Supabase API gateway expects. Both are required.
func New(o adapters.Options) (*Client, error) {
	if o.BaseURL == "" || o.Token == "" {
		return nil, fmt.Errorf("%s: %w: set SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY", Name, adapters.ErrNotConfigured)
	}
	u, err := url.Parse(o.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s: invalid project URL %q", Name, o.BaseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Client{base: u, token: o.Token, http: adapters.NewHTTPClient(Name, o)}, nil
}

// Names of the checks in a Report, in order.
const (
	CheckREST    = "rest"
	CheckAuth    = "auth"
	CheckStorage = "storage"
	CheckPing    = "rpc_ping"
)

// Check is the outcome of one health probe.
type Check struct {
	Name    string
	OK      bool
	Status  int           // HTTP status, 0 if no response
	Latency time.Duration // the whole call, retries included
	Err     error         // why it is not OK: *adapters.APIError, a transport error, or a bad answer
}

// Report is the health of a project.
type Report struct {
	Checks []Check // CheckREST, CheckAuth, CheckStorage, CheckPing, in that order
}

// OK reports whether every check passed.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Failed returns the names of the checks that did not pass.
func (r Report) Failed() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name)
		}
	}
	return out
}

// probe is one health request.
type probe struct {
	name, method, path string
	body               []byte
	// check validates a 2xx body; nil accepts any.
	check func(body []byte) error
}

var probes = []probe{
	// PostgREST answers its root with the OpenAPI description of the schema.
	{name: CheckREST, method: http.MethodGet, path: "/rest/v1/"},
	// GoTrue's health endpoint: {"version": ..., "name": "GoTrue", ...}.
	{name: CheckAuth, method: http.MethodGet, path: "/auth/v1/health"},
	// Storage's liveness route: 200 with an empty body (see supabase/storage
	// src/app.ts); /storage/v1/health would also probe its database.
	{name: CheckStorage, method: http.MethodGet, path: "/storage/v1/status"},
	// A public.ping() SQL function returning 'pong', called through PostgREST:
	// proves the API reaches the database and runs queries.
	{name: CheckPing, method: http.MethodPost, path: "/rest/v1/rpc/ping", body: []byte("{}"), check: func(b []byte) error {
		var s string
		if err := json.Unmarshal(b, &s); err != nil || s != "pong" {
			return fmt.Errorf("ping() answered %.64q, want \"pong\"", b)
		}
		return nil
	}},
}

// Health probes the project's services concurrently and reports each. It
// never fails as a whole: a service that cannot be reached is a failed check.
func (c *Client) Health(ctx context.Context) Report {
	checks := make([]Check, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			checks[i] = c.probe(ctx, p)
		}()
	}
	wg.Wait()
	return Report{Checks: checks}
}

func (c *Client) probe(ctx context.Context, p probe) Check {
	out := Check{Name: p.name}
	u := *c.base
	u.Path += p.path
	var body io.Reader
	if p.body != nil {
		body = bytes.NewReader(p.body)
		// ping() only reads: safe to retry like a GET.
		ctx = adapters.Idempotent(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, u.String(), body)
	if err != nil {
		out.Err = err
		return out
	}
	req.Header.Set("apikey", c.token)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if p.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		out.Latency = time.Since(start)
		out.Err = fmt.Errorf("%s: %s %s: %w", Name, p.method, p.path, err)
		return out
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	out.Latency = time.Since(start)
	out.Status = resp.StatusCode
	switch {
	case err != nil:
		out.Err = fmt.Errorf("%s: %s %s: read body: %w", Name, p.method, p.path, err)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		out.Err = apiError(req, resp, b)
	case p.check != nil:
		if err := p.check(b); err != nil {
			out.Err = fmt.Errorf("%s: %s %s: %w", Name, p.method, p.path, err)
		}
	}
	out.OK = out.Err == nil
	return out
}

// apiError translates an error answer. Supabase's services disagree on the
// shape: PostgREST sends {code, message, details, hint}, GoTrue {code,
// error_code, msg}, Storage {statusCode, error, message}, the gateway
// {message}.
func apiError(req *http.Request, resp *http.Response, body []byte) *adapters.APIError {
	e := &adapters.APIError{
		Adapter: Name, Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode,
		RetryAfter: adapters.RetryAfter(resp.Header, time.Now()),
	}
	var b struct {
		Code      any    `json:"code"`
		ErrorCode string `json:"error_code"`
		Error     string `json:"error"`
		Message   string `json:"message"`
		Msg       string `json:"msg"`
		Hint      string `json:"hint"`
	}
	if json.Unmarshal(body, &b) != nil {
		e.Message = strings.TrimSpace(string(body[:min(len(body), 200)]))
		return e
	}
	if s, ok := b.Code.(string); ok {
		e.Code = s
	}
	e.Code = firstNonEmpty(b.ErrorCode, e.Code, b.Error)
	e.Message = firstNonEmpty(b.Message, b.Msg, b.Error)
	if b.Hint != "" {
		e.Message += " (" + b.Hint + ")"
	}
	return e
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

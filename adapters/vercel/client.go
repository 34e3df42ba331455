// Package vercel is opsd's client for the Vercel REST API: projects,
// deployments (list, inspect, create, wait, build logs). It is a thin net/http
// client on adapters.NewHTTPClient; Vercel error bodies are translated into
// *adapters.APIError at this boundary.
package vercel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/internal/backoff"
)

// Name is the adapter name used in calls and errors.
const Name = "vercel"

// DefaultBaseURL is the Vercel API root; override it with VERCEL_API_URL (tests).
const DefaultBaseURL = "https://api.vercel.com"

// maxBody bounds how much of a response is read; deployment objects are small,
// build logs are requested with a limit.
const maxBody = 16 << 20

// Client calls the Vercel REST API on behalf of one account or team.
type Client struct {
	http   *http.Client
	base   *url.URL
	token  string
	teamID string
	opts   adapters.Options

	// Retry is how WaitForDeployment and CreateDeployment ride out rate
	// limits and 5xx: as long as Vercel asks, within the caller's deadline.
	// New sets its backoff from the options' MinBackoff and MaxBackoff.
	Retry adapters.Policy
}

// New returns a Client. o.Token (VERCEL_TOKEN) is required; o.BaseURL defaults
// to DefaultBaseURL. teamID (VERCEL_TEAM_ID), when set, is sent as the teamId
// query parameter on every call so team projects are addressed.
func New(o adapters.Options, teamID string) (*Client, error) {
	if o.Token == "" {
		return nil, fmt.Errorf("%s: %w: set VERCEL_TOKEN", Name, adapters.ErrNotConfigured)
	}
	raw := o.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil || base.Scheme == "" || base.Host == "" {
		return nil, fmt.Errorf("%s: invalid base URL %q", Name, raw)
	}
	o = o.WithDefaults()
	return &Client{
		http:   adapters.NewHTTPClient(Name, o),
		base:   base,
		token:  o.Token,
		teamID: teamID,
		opts:   o,
		Retry:  adapters.Policy{Backoff: backoff.Policy{Min: o.MinBackoff, Max: o.MaxBackoff}},
	}, nil
}

// errorBody is Vercel's documented error response: {"error":{"code","message"}}.
type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// do sends one API request with the token and teamId, and decodes a 2xx JSON
// response into out (if non-nil) or translates an error response.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) error {
	// path holds already-escaped segments (see seg), so parse rather than join.
	u, err := url.Parse(c.base.String() + path)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", Name, method, path, err)
	}
	if q == nil {
		q = url.Values{}
	}
	if c.teamID != "" {
		q.Set("teamId", c.teamID)
	}
	u.RawQuery = q.Encode()

	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s: encode %s %s: %w", Name, method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", Name, method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %s %s: %w", Name, method, path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%s: %s %s: read response: %w", Name, method, path, err)
	}
	if resp.StatusCode >= 300 {
		var eb errorBody
		_ = json.Unmarshal(data, &eb) // a non-JSON body (proxy page) still yields the status
		msg := eb.Error.Message
		if msg == "" && eb.Error.Code == "" {
			msg = strings.TrimSpace(string(data[:min(len(data), 200)]))
		}
		ae := adapters.NewAPIError(Name, resp, eb.Error.Code, msg)
		if l := adapters.ProviderLimit(Name, resp, data, time.Now()); ae.RetryAfter == 0 && l.Wait > 0 {
			ae.RetryAfter = l.Wait // error.limit.reset, when no header said it
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: %s %s: decode response: %w", Name, method, path, err)
	}
	return nil
}

// seg escapes one path segment, such as a deployment ID or hostname.
func seg(s string) string { return url.PathEscape(s) }

// unwrapURLError drops *url.Error's URL (it repeats the query string) and
// keeps the cause, so errors read "vercel: GET /v13/...: context deadline exceeded".
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// retryRateLimited runs a non-idempotent call again when Vercel answered 429:
// a rate-limited request was refused before it was processed, so repeating it
// cannot create a second deployment. It waits as Vercel asks (headers or
// error.limit.reset) within ctx's deadline (c.Retry); other failures are
// returned as they are.
func (c *Client) retryRateLimited(ctx context.Context, call func() error) error {
	for attempt := 1; ; attempt++ {
		err := call()
		var ae *adapters.APIError
		if err == nil || attempt > max(c.opts.MaxRetries, 0) || !errors.As(err, &ae) || ae.Status != http.StatusTooManyRequests {
			return err
		}
		if perr := c.Retry.Pause(ctx, attempt, err); perr != nil {
			return perr
		}
	}
}

// Package digitalocean is opsd's DigitalOcean adapter: it looks up Droplets
// through github.com/digitalocean/godo, running godo on adapters.NewHTTPClient
// (timeouts, retries, call recording) and translating godo's ErrorResponse into
// *adapters.APIError at this boundary.
package digitalocean

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/digitalocean/godo"

	"github.com/opscontrolroom/opsd/adapters"
)

// Name is the adapter name used in calls and errors.
const Name = "digitalocean"

// DefaultBaseURL is the DigitalOcean API root; override it with DIGITALOCEAN_API_URL.
const DefaultBaseURL = "https://api.digitalocean.com/"

// Client looks up DigitalOcean resources.
type Client struct {
	godo *godo.Client
}

// New returns a Client. o.Token (DIGITALOCEAN_TOKEN) is required; o.BaseURL
// (DIGITALOCEAN_API_URL) defaults to DefaultBaseURL.
func New(o adapters.Options) (*Client, error) {
	if o.Token == "" {
		return nil, fmt.Errorf("%s: %w: set DIGITALOCEAN_TOKEN", Name, adapters.ErrNotConfigured)
	}
	base := o.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	if u, err := url.Parse(base); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("%s: invalid base URL %q", Name, base)
	}
	// godo resolves relative paths ("v2/droplets") against the base, which
	// must therefore end in a slash to keep any path prefix.
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}

	// The token goes in at the bottom of the stack, so it is sent on every
	// attempt but never seen by the recorder.
	inner := http.DefaultTransport
	if o.HTTPClient != nil && o.HTTPClient.Transport != nil {
		inner = o.HTTPClient.Transport
	}
	withAuth := &http.Client{Transport: &bearer{token: o.Token, next: inner}}
	if o.HTTPClient != nil {
		cp := *o.HTTPClient
		cp.Transport = withAuth.Transport
		withAuth = &cp
	}
	o.HTTPClient = withAuth
	hc := adapters.NewHTTPClient(Name, o)
	hc.Transport = &keepErrorBody{next: hc.Transport}

	g, err := godo.New(hc, godo.SetBaseURL(base), godo.SetUserAgent("opsd"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return &Client{godo: g}, nil
}

// bearer adds the API token to each request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// keepErrorBody keeps the body of an error response readable after godo has
// consumed it: godo's ErrorResponse drops DigitalOcean's error "id", which we
// want as APIError.Code.
type keepErrorBody struct{ next http.RoundTripper }

// errorBody is an error response body that remembers its bytes.
type errorBody struct {
	*bytes.Reader
	data []byte
}

func (errorBody) Close() error { return nil }

func (k *keepErrorBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := k.next.RoundTrip(req)
	if err != nil || resp.StatusCode < 300 {
		return resp, err
	}
	data, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	if rerr != nil {
		return nil, rerr
	}
	resp.Body = errorBody{Reader: bytes.NewReader(data), data: data}
	return resp, nil
}

// translate turns godo's errors into *adapters.APIError; other errors (context,
// network) are returned without the *url.Error wrapper, whose URL repeats the query.
func translate(err error) error {
	var er *godo.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		var body struct {
			ID      string `json:"id"`
			Message string `json:"message"`
		}
		if eb, ok := er.Response.Body.(errorBody); ok {
			_ = json.Unmarshal(eb.data, &body)
		}
		msg := er.Message
		if msg == "" && er.NestedError != nil {
			msg = er.NestedError.Message
		}
		if er.RequestID != "" {
			msg += " (request " + er.RequestID + ")"
		}
		return adapters.NewAPIError(Name, er.Response, body.ID, strings.TrimSpace(msg))
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Package storage keeps artifact content too large for an artifacts row in
// Supabase Storage (the control room's own project) and returns a link the
// UI can open: an upload with the service-role key, then a signed URL.
package storage

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

	"github.com/opscontrolroom/opsd/executor"
)

// DefaultLinkTTL is how long a signed link stays valid when none is set.
const DefaultLinkTTL = 7 * 24 * time.Hour

// Client uploads objects to one bucket of a Supabase project's Storage.
type Client struct {
	base    *url.URL // project URL, e.g. https://xyz.supabase.co
	key     string   // service-role key; never logged, never in an error
	bucket  string
	linkTTL time.Duration
	http    *http.Client
}

var _ executor.LargeArtifactStore = (*Client)(nil)

// New returns a Client for bucket (artifact_storage_bucket) of the project at
// projectURL (supabase_url) with the service-role key
// (supabase_service_role_key). Links are signed for linkTTL
// (artifact_link_ttl; DefaultLinkTTL when <= 0).
func New(projectURL, serviceKey, bucket string, linkTTL time.Duration, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSuffix(projectURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("storage: supabase_url = %q: must be an http(s) URL such as https://xyz.supabase.co", projectURL)
	}
	if serviceKey == "" {
		return nil, errors.New("storage: artifact_storage_bucket needs supabase_service_role_key (env SUPABASE_SERVICE_ROLE_KEY)")
	}
	if bucket == "" || strings.ContainsAny(bucket, "/?#") {
		return nil, fmt.Errorf("storage: artifact_storage_bucket = %q: must be a bucket name without '/', '?' or '#'", bucket)
	}
	if linkTTL <= 0 {
		linkTTL = DefaultLinkTTL
	}
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: u, key: serviceKey, bucket: bucket, linkTTL: linkTTL, http: hc}, nil
}

// PutLargeArtifact uploads value as runs/<run id>/<n>-<title>.txt and
// returns a signed URL for it.
func (c *Client) PutLargeArtifact(ctx context.Context, a executor.Artifact) (string, error) {
	name := fmt.Sprintf("runs/%s/%d-%s.txt", safe(a.RunID), time.Now().UnixNano(), safe(a.Title))
	obj := c.bucket + "/" + name
	up := c.endpoint("/storage/v1/object/" + escapePath(obj))
	if err := c.call(ctx, up, "text/plain; charset=utf-8", []byte(a.Value), nil); err != nil {
		return "", fmt.Errorf("storage: upload %s: %w", obj, err)
	}
	body, _ := json.Marshal(map[string]int64{"expiresIn": int64(c.linkTTL / time.Second)})
	var signed struct {
		SignedURL string `json:"signedURL"`
	}
	if err := c.call(ctx, c.endpoint("/storage/v1/object/sign/"+escapePath(obj)), "application/json", body, &signed); err != nil {
		return "", fmt.Errorf("storage: sign %s: %w", obj, err)
	}
	if signed.SignedURL == "" {
		return "", fmt.Errorf("storage: sign %s: no signedURL in the answer", obj)
	}
	// Storage answers a path relative to /storage/v1.
	return c.base.String() + "/storage/v1/" + strings.TrimPrefix(signed.SignedURL, "/"), nil
}

func (c *Client) endpoint(path string) string { return c.base.String() + path }

// call POSTs body and decodes a 2xx JSON answer into out (if non-nil).
func (c *Client) call(ctx context.Context, u, contentType string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("apikey", c.key)
	req.Header.Set("Content-Type", contentType)
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err // no URL, no key: just the cause
		}
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 300 {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		msg := strings.TrimSpace(e.Error + " " + e.Message)
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return fmt.Errorf("%d: %s", resp.StatusCode, msg)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// safe keeps letters, digits, '-', '_' and '.' of s (others become '-'),
// at most 80 of them, so an object name needs no escaping.
func safe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 80 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "artifact"
	}
	return b.String()
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

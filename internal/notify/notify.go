// Package notify delivers run notifications (a run finished, or waits for
// approval) to Slack-compatible incoming webhooks ({"text": ...}) and to
// generic JSON webhooks (the executor.Notification itself), retrying each
// delivery with backoff. A failed delivery is returned as an error for the
// daemon to log; it never fails the run.
package notify

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
	"github.com/opscontrolroom/opsd/executor"
	"github.com/opscontrolroom/opsd/internal/config"
)

// Defaults of Options fields left at zero.
const (
	DefaultTries      = 3
	DefaultTimeout    = 10 * time.Second
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// Options tune delivery; zero values take the defaults above.
type Options struct {
	Tries      int           // attempts per webhook, default 3
	Timeout    time.Duration // per attempt, default 10s
	MinBackoff time.Duration // default 500ms; a Retry-After header wins
	MaxBackoff time.Duration // default 10s
	HTTPClient *http.Client  // base client (tests)
	// Redactor cleans the text and payload; the daemon redacts only the
	// message, not the run's intent. Default: none.
	Redactor executor.Redactor
}

// Notifier posts notifications to webhooks. Safe for concurrent use.
type Notifier struct {
	slack, hooks []string
	client       *http.Client
	redactor     executor.Redactor
}

var _ executor.Notifier = (*Notifier)(nil)

// New returns a Notifier for the configured webhooks, or nil when there are
// none.
func New(cfg config.Notifications, o Options) *Notifier {
	if len(cfg.Slack) == 0 && len(cfg.Webhooks) == 0 {
		return nil
	}
	if o.Tries <= 0 {
		o.Tries = DefaultTries
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	client := adapters.NewHTTPClient("notify", adapters.Options{
		Timeout: o.Timeout, MaxRetries: o.Tries - 1, MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff, HTTPClient: o.HTTPClient,
	})
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Notifier{slack: cfg.Slack, hooks: cfg.Webhooks, client: client, redactor: o.Redactor}
}

// Notify posts n to every webhook; the error names each webhook that failed
// by its host only (webhook URLs carry their secret in the path).
func (n *Notifier) Notify(ctx context.Context, note executor.Notification) error {
	if n.redactor != nil {
		note.Intent, note.Message = n.redactor.String(note.Intent), n.redactor.String(note.Message)
	}
	slackBody, _ := json.Marshal(map[string]string{"text": Text(note)})
	hookBody, _ := json.Marshal(struct {
		executor.Notification
		Text string `json:"text"`
	}{note, Text(note)})
	var errs []error
	for _, u := range n.slack {
		if err := n.post(ctx, u, slackBody); err != nil {
			errs = append(errs, fmt.Errorf("slack webhook %s: %w", host(u), err))
		}
	}
	for _, u := range n.hooks {
		if err := n.post(ctx, u, hookBody); err != nil {
			errs = append(errs, fmt.Errorf("webhook %s: %w", host(u), err))
		}
	}
	return errors.Join(errs...)
}

// post delivers one body; the transport retries 429, 5xx and network
// errors (the context is marked idempotent: a duplicate notification is
// better than a lost one).
func (n *Notifier) post(ctx context.Context, rawURL string, body []byte) error {
	req, err := http.NewRequestWithContext(adapters.Idempotent(ctx), http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return errors.New("invalid webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "opsd")
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL would print the secret path
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return nil
}

// Text is the one-line message of a notification.
func Text(n executor.Notification) string {
	var icon, what string
	switch n.Event {
	case executor.StatusSuccess:
		icon, what = ":white_check_mark:", "succeeded"
	case executor.StatusError:
		icon, what = ":x:", "failed"
	case executor.StatusCanceled:
		icon, what = ":no_entry_sign:", "was canceled"
	case "waiting_for_approval":
		icon, what = ":hourglass:", "is waiting for approval"
	default:
		icon, what = ":information_source:", n.Event
	}
	s := fmt.Sprintf("%s opsd %s run %s (%s, lane %s) %s", icon, n.Kind, n.RunID, n.Env, n.Lane, what)
	if n.Intent != "" {
		s += ": " + firstLine(n.Intent)
	}
	if n.Message != "" {
		s += " — " + firstLine(n.Message)
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > 300 {
		s = string(r[:299]) + "…"
	}
	return s
}

func host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Host
}

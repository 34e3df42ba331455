package executor

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxWakeBody is how much of a /v1/wake body is read. A Supabase Database
// Webhook posts the whole runs row, and a long intent makes it bigger; the
// body is only a hint, so a longer one is not read further: it wakes every
// lane and is answered 202 like any other.
const MaxWakeBody = 64 << 10

// HTTPConfig configures the daemon's HTTP endpoints.
type HTTPConfig struct {
	// WebhookSecret guards POST /v1/wake (Authorization: Bearer <secret>).
	// Empty disables the endpoint.
	WebhookSecret string
	// SchemaVersion is the migration version this binary needs; /readyz
	// compares the database's to it.
	SchemaVersion string
}

// Handler serves /healthz, /readyz, /metrics and POST /v1/wake.
func (d *Daemon) Handler(cfg HTTPConfig) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "worker_id": d.cfg.WorkerID})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := d.Ready(r.Context(), cfg.SchemaVersion); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ok": false, "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "in_flight": d.InFlight()})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.metrics.Registry, promhttp.HandlerOpts{}))
	mux.Handle("/v1/wake", d.wakeHandler(cfg.WebhookSecret))
	return mux
}

// Ready reports why the daemon should not get traffic, or nil.
func (d *Daemon) Ready(ctx context.Context, wantSchema string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := d.store.Ping(ctx); err != nil {
		return fmt.Errorf("store unreachable: %w", err)
	}
	if wantSchema != "" {
		got, err := d.store.SchemaVersion(ctx)
		if err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if got != wantSchema {
			return fmt.Errorf("database schema is %q but this binary needs %q: run `opsd migrate`", got, wantSchema)
		}
	}
	if !d.Healthy() {
		return errors.New("heartbeats are failing; claiming is paused")
	}
	return nil
}

// wakeBody is what /v1/wake accepts: a Supabase Database Webhook payload
// ({type, table, schema, record, old_record}) or the frontend's
// functions.invoke body ({run_id}). It is only a hint of where to look.
type wakeBody struct {
	Type   string `json:"type"`
	Table  string `json:"table"`
	Schema string `json:"schema"`
	Record *struct {
		ID   string `json:"id"`
		Lane string `json:"lane"`
	} `json:"record"`
	RunID string `json:"run_id"`
}

// ParseWakeBody decodes a wake body and returns the lane to wake ("" for
// every lane). An empty body wakes every lane.
func ParseWakeBody(b []byte) (lane string, err error) {
	if len(strings.TrimSpace(string(b))) == 0 {
		return "", nil
	}
	var body wakeBody
	if err := json.Unmarshal(b, &body); err != nil {
		return "", fmt.Errorf("body is not JSON: %w", err)
	}
	if body.Table != "" && body.Table != "runs" {
		return "", fmt.Errorf("webhook for table %q: only runs wakes opsd", body.Table)
	}
	if body.Record != nil {
		return body.Record.Lane, nil
	}
	return "", nil
}

func (d *Daemon) wakeHandler(secret string) http.Handler {
	want := sha256.Sum256([]byte("Bearer " + secret))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"ok": false, "error": "use POST"})
			return
		}
		if secret == "" {
			writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "wake-up webhook disabled: set OPSD_WEBHOOK_SECRET"})
			return
		}
		// The scheme is case-insensitive (RFC 9110); the token is compared as
		// digests in constant time, so neither content nor length leaks.
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			token = ""
		}
		got := sha256.Sum256([]byte("Bearer " + token))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="opsd"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"ok": false, "error": "missing or wrong bearer secret"})
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxWakeBody+1))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "read body: " + err.Error()})
			return
		}
		if len(b) > MaxWakeBody {
			// Too long to be worth reading for its lane: wake them all. The
			// rest of the body is left unread (the server closes the
			// connection rather than drain a large one).
			d.metrics.WebhookWakeups.Inc()
			d.Wake("")
			writeJSON(w, http.StatusAccepted, map[string]any{"ok": true, "note": fmt.Sprintf("body over %d bytes: every lane woken", MaxWakeBody)})
			return
		}
		lane, err := ParseWakeBody(b)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": err.Error()})
			return
		}
		d.metrics.WebhookWakeups.Inc()
		d.Wake(lane)
		writeJSON(w, http.StatusAccepted, map[string]any{"ok": true})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// NewHTTPServer wraps h with timeouts that keep slow or hostile clients
// (slowloris) from holding connections.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}

// Package dotest is an in-memory fake of the DigitalOcean API endpoints opsd
// uses, served by httptest. It follows DigitalOcean's documented requests and
// responses: Bearer token, {"droplets":[...],"links":{"pages":{...}},"meta":{"total":N}}
// lists with page/per_page, {"id","message"} errors, and RateLimit-* headers
// (429 optionally with Retry-After).
package dotest

import (
	"embed"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/internal/fake"
)

// examples are DigitalOcean's published example bodies (testdata/README.md
// says where each comes from).
//
//go:embed testdata/*.json
var examples embed.FS

// Example returns the published example body testdata/<name>.json, e.g.
// "droplets_all" or "error_too_many_requests"; it panics on an unknown name
// (a test bug).
func Example(name string) []byte {
	b, err := examples.ReadFile("testdata/" + name + ".json")
	if err != nil {
		panic("dotest: no example " + name)
	}
	return b
}

// DefaultToken is the token NewServer accepts unless told otherwise.
const DefaultToken = "do-test-token"

// rateLimit is the documented hourly request allowance.
const rateLimit = 5000

// Server is the fake DigitalOcean API. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	Token string

	mux       *http.ServeMux
	mu        sync.Mutex
	droplets  []Droplet
	failures  fake.Failures[Failure]
	requests  fake.Log[Request]
	latency   time.Duration
	nextID    int
	remaining int
}

// NewServer starts a fake closed when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{Token: DefaultToken, nextID: 3164444, remaining: rateLimit}
	s.mux = s.routes()
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Options returns adapter options that reach this fake with its token and
// millisecond backoffs.
func (s *Server) Options() adapters.Options {
	return fake.Options(s.Token, s.URL)
}

// Failure makes matching requests fail. Zero Method or PathPrefix match any.
type Failure struct {
	Method     string
	PathPrefix string
	Status     int
	ID         string        // error id; default derived from Status
	Message    string        // error message
	RetryAfter string        // Retry-After header value, if any
	Times      int           // how many requests fail; <= 0 means once
	Delay      time.Duration // wait before answering (cut short if the client goes away)
	// Example answers with a published example body (see Example) as it
	// is, with Status (default 200), instead of an error body.
	Example string
}

// Fail queues a failure; the first queued failure matching a request is used.
func (s *Server) Fail(f Failure) {
	if f.Times <= 0 {
		f.Times = 1
	}
	s.failures.Add(f.Method, f.PathPrefix, f.Times, f)
}

// SetLatency delays every response by d (or until the client gives up).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request { return s.requests.All() }

// CountRequests returns how many requests had this method and path.
func (s *Server) CountRequests(method, path string) int {
	return s.requests.Count(func(r Request) bool { return r.Method == method && r.Path == path })
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	reqID := "req-" + strconv.Itoa(s.requests.Add(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}))
	f := s.failures.Take(r.Method, r.URL.Path)
	s.mu.Lock()
	delay := s.latency
	if s.remaining > 0 {
		s.remaining--
	}
	remaining := s.remaining
	s.mu.Unlock()
	if f != nil {
		delay += f.Delay
	}
	if !fake.Hold(r.Context(), delay) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Request-Id", reqID)
	h.Set("RateLimit-Limit", strconv.Itoa(rateLimit))
	h.Set("RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10))
	if f != nil {
		if f.Status == http.StatusTooManyRequests {
			remaining = 0
		}
		h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
		if f.RetryAfter != "" {
			h.Set("Retry-After", f.RetryAfter)
		}
		if f.Example != "" {
			w.WriteHeader(cmpOr(f.Status, http.StatusOK))
			_, _ = w.Write(Example(f.Example))
			return
		}
		writeError(w, f.Status, f.ID, f.Message)
		return
	}
	h.Set("RateLimit-Remaining", strconv.Itoa(remaining))
	if r.Header.Get("Authorization") != "Bearer "+s.Token {
		writeError(w, http.StatusUnauthorized, "unauthorized", "")
		return
	}
	s.mux.ServeHTTP(w, r)
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// writeError answers {"id","message"}; without a message, the published
// example's message for that id when there is one.
func writeError(w http.ResponseWriter, status int, id, msg string) {
	if id == "" {
		id = defaultID(status)
	}
	if msg == "" {
		var ex struct{ Message string }
		if b, err := examples.ReadFile("testdata/error_" + id + ".json"); err == nil && json.Unmarshal(b, &ex) == nil {
			msg = ex.Message
		}
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	writeJSON(w, status, map[string]string{"id": id, "message": msg})
}

func defaultID(status int) string {
	switch status {
	case http.StatusTooManyRequests:
		return "too_many_requests"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusBadRequest:
		return "bad_request"
	case http.StatusUnprocessableEntity:
		return "unprocessable_entity"
	case http.StatusServiceUnavailable:
		return "service_unavailable"
	}
	return "server_error"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Package verceltest is an in-memory fake of the Vercel REST API endpoints
// opsd uses, served by httptest, for tests of the vercel adapter and of
// runbooks end to end. It follows Vercel's documented requests and responses:
// Bearer token, teamId query parameter, {"error":{"code","message"}} bodies,
// 429 with Retry-After and X-RateLimit-* headers, timestamp pagination.
package verceltest

import (
	"bytes"
	"embed"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/internal/fake"
)

// DefaultToken is the token NewServer accepts unless told otherwise.
const DefaultToken = "vercel-test-token"

// Server is the fake Vercel API. Its methods are safe for concurrent use.
type Server struct {
	*httptest.Server
	Token  string // accepted Bearer token
	TeamID string // required teamId query parameter ("" = none allowed)

	mux         *http.ServeMux
	mu          sync.Mutex
	projects    []*Project
	deployments []*Deployment // in creation order
	failures    fake.Failures[Failure]
	requests    fake.Log[Request]
	latency     time.Duration
	outcome     string // final state of created deployments
	flatEvents  bool   // answer events in the flat shape
	seq         int
	lastCreated int64
}

// Option configures NewServer.
type Option func(*Server)

// WithTeam requires teamId=id on every request.
func WithTeam(id string) Option { return func(s *Server) { s.TeamID = id } }

// WithToken sets the accepted token.
func WithToken(token string) Option { return func(s *Server) { s.Token = token } }

// NewServer starts a fake closed when the test ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{Token: DefaultToken, outcome: "READY"}
	for _, o := range opts {
		o(s)
	}
	s.mux = s.routes()
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Options returns adapter options that reach this fake with its token and
// millisecond backoffs, so retries do not slow tests down.
func (s *Server) Options() adapters.Options {
	return fake.Options(s.Token, s.URL)
}

// Failure makes matching requests fail. Zero Method or PathPrefix match any.
type Failure struct {
	Method     string
	PathPrefix string        // e.g. "/v13/deployments"
	Status     int           // HTTP status to answer
	Code       string        // error.code; default derived from Status
	Message    string        // error.message
	RetryAfter string        // Retry-After header value (seconds or HTTP-date)
	Times      int           // how many requests fail; <= 0 means once
	Delay      time.Duration // wait before answering (still cut short by the client going away)
	// BodyReset answers a rate limit the way Vercel's error docs show it
	// in the body: error.limit {remaining: 0, reset (unix s), resetMs, total},
	// reset BodyReset ahead, and no X-RateLimit-* or Retry-After headers.
	BodyReset time.Duration
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

// SetBuildOutcome sets the final state (any readyState: "READY", "ERROR",
// "CANCELED", "BLOCKED", "DELETED", or an undocumented one) that
// deployments created from now on reach after QUEUED and BUILDING.
func (s *Server) SetBuildOutcome(state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.outcome = state
}

// examples holds the bodies the fake answers (testdata/README.md says where
// each comes from).
//
//go:embed testdata/*.json
var examples embed.FS

// rateLimitedBody is testdata/rate_limited.json with its reset moved to at.
func rateLimitedBody(f *Failure, at time.Time) map[string]any {
	raw, err := examples.ReadFile("testdata/rate_limited.json")
	var body map[string]map[string]any
	if err != nil || json.Unmarshal(raw, &body) != nil {
		panic("verceltest: bad rate_limited.json")
	}
	e := body["error"]
	e["code"] = orDefault(f.Code, e["code"].(string))
	e["message"] = orDefault(f.Message, e["message"].(string))
	limit := e["limit"].(map[string]any)
	limit["reset"], limit["resetMs"] = at.Unix(), at.UnixMilli()
	return map[string]any{"error": e}
}

// SetFlatEvents makes GET /v3/deployments/{id}/events answer the flat shape
// Vercel's spec also documents ({type, created, date, text, ...} with no
// payload object) instead of {type, created, payload: {text, ...}}.
func (s *Server) SetFlatEvents(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flatEvents = on
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Request is one request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
	Body   []byte
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request { return s.requests.All() }

// CountRequests returns how many requests had this method and path.
func (s *Server) CountRequests(method, path string) int {
	return s.requests.Count(func(r Request) bool { return r.Method == method && r.Path == path })
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	s.requests.Add(Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body})
	f := s.failures.Take(r.Method, r.URL.Path)
	s.mu.Lock()
	delay := s.latency
	s.mu.Unlock()
	if f != nil {
		delay += f.Delay
	}
	if !fake.Hold(r.Context(), delay) {
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	if f != nil && f.BodyReset > 0 {
		writeJSON(w, f.Status, rateLimitedBody(f, time.Now().Add(f.BodyReset)))
		return
	}
	reset := strconv.FormatInt(time.Now().Add(time.Minute).Unix(), 10)
	w.Header().Set("X-RateLimit-Limit", "100")
	w.Header().Set("X-RateLimit-Reset", reset)
	if f != nil {
		w.Header().Set("X-RateLimit-Remaining", "0")
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(w, f.Status, f.Code, f.Message)
		return
	}
	w.Header().Set("X-RateLimit-Remaining", "99")
	if !s.authorized(w, r) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	s.mux.ServeHTTP(w, r)
}

// authorized checks the Bearer token and teamId the way Vercel does: 403
// forbidden for a missing or wrong token or a team the token cannot access.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	switch {
	case auth == "":
		writeError(w, http.StatusForbidden, "forbidden", "The request is missing an authentication token")
		return false
	case !ok || token != s.Token:
		writeError(w, http.StatusForbidden, "forbidden", "Not authorized")
		return false
	case r.URL.Query().Get("teamId") != s.TeamID:
		writeError(w, http.StatusForbidden, "forbidden", "Not authorized")
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if code == "" {
		code = defaultCode(status)
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func defaultCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limited"
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusForbidden:
		return "forbidden"
	case status == http.StatusBadRequest:
		return "bad_request"
	case status >= 500:
		return "internal_server_error"
	}
	return "error"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

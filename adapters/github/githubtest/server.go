// Package githubtest is an in-memory fake of the GitHub REST API endpoints
// opsd uses, served by net/http/httptest, for tests of the github adapter and
// of the runbooks built on it.
//
// It follows GitHub's documented requests and responses: JSON shapes, error
// bodies {"message": ..., "documentation_url": ...}, 401 on a bad token, 404
// for unknown repositories and objects, 422 validation errors (existing
// branch or pull request, non-fast-forward ref update, unknown ref), Link
// header pagination, and, on demand (Server.Fail), 5xx, slow answers, 429
// with Retry-After, and primary (403 with x-ratelimit-remaining: 0) and
// secondary rate limits.
package githubtest

import (
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opscontrolroom/opsd/adapters/internal/fake"
)

// DefaultToken is the token a new Server accepts.
const DefaultToken = "ghp_fake_token"

// Server is a fake GitHub API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the API root, to use as adapters.Options.BaseURL.
	URL string
	// Token is the accepted token, sent as "Authorization: Bearer <Token>"
	// or "Authorization: token <Token>".
	Token string

	srv *httptest.Server

	mu               sync.Mutex
	seq              int64
	repos            map[string]*repo // lower-case "owner/name"
	failures         fake.Failures[Failure]
	requests         fake.Log[string]
	returnRunDetails bool
	rejectRunDetails bool
	now              func() time.Time
}

// New starts a Server, closed when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{
		Token:            DefaultToken,
		repos:            map[string]*repo{},
		returnRunDetails: true,
		now:              func() time.Time { return time.Now().UTC().Truncate(time.Second) },
	}
	s.srv = httptest.NewServer(s.routes())
	s.URL = s.srv.URL + "/"
	tb.Cleanup(s.srv.Close)
	return s
}

// examples holds the error bodies the fake answers (testdata/README.md says
// where each comes from).
//
//go:embed testdata/*.json
var examples embed.FS

// exampleMessage is the message of testdata/<name>.json.
func exampleMessage(name string) string {
	var b apiError
	raw, err := examples.ReadFile("testdata/" + name + ".json")
	if err != nil || json.Unmarshal(raw, &b) != nil {
		panic("githubtest: bad example " + name)
	}
	return b.Message
}

// Close stops the server; tests need not call it.
func (s *Server) Close() { s.srv.Close() }

// Failure makes matching requests fail; register it with Server.Fail.
type Failure struct {
	Method string // matches any method when empty
	Path   string // URL path prefix, e.g. "/repos/o/r/pulls"; matches any when empty
	Times  int    // how many requests fail; 0 means 1, negative means every one

	Status  int    // HTTP status; default 500 (0 with Delay alone: answer normally)
	Message string // error message; default the status text
	// RetryAfter sets the Retry-After header (whole seconds, rounded up).
	RetryAfter time.Duration
	// RateLimit answers GitHub's primary rate limit: 403 (or Status) with
	// x-ratelimit-remaining: 0 and x-ratelimit-reset Reset ahead.
	RateLimit bool
	// Reset is how far ahead x-ratelimit-reset is for RateLimit; default one minute.
	Reset time.Duration
	// Secondary answers GitHub's secondary rate limit: 403 (or Status) with a
	// documentation_url ending in #secondary-rate-limits.
	Secondary bool
	// Delay holds the answer back this long, or until the client gives up.
	Delay time.Duration
	// Example answers a published example body (testdata/<Example>.json) as
	// it is, with Status (default 200).
	Example string
}

// Fail registers a failure. Failures are matched in registration order.
func (s *Server) Fail(f Failure) {
	switch {
	case f.Status != 0:
	case f.Example != "":
		f.Status = http.StatusOK
	case f.RateLimit || f.Secondary:
		f.Status = http.StatusForbidden
	case f.Delay == 0:
		f.Status = http.StatusInternalServerError
	}
	s.failures.Add(f.Method, f.Path, f.Times, f)
}

// SetReturnRunDetails sets whether a dispatch honours return_run_details
// (answering 200 with the run id) or, like GitHub Enterprise Server and the
// API before 2026, always answers 204 No Content. Default true.
func (s *Server) SetReturnRunDetails(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.returnRunDetails = on
}

// SetRejectRunDetails makes a dispatch that sends return_run_details fail
// with 422, as a GitHub Enterprise Server that validates the body against an
// older schema answers; without the field it answers 204. Default false.
func (s *Server) SetRejectRunDetails(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectRunDetails = on
}

// SetClock replaces the server's clock, used for created_at and the Date header.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Requests returns "METHOD /path" for every request received, in order.
func (s *Server) Requests() []string { return s.requests.All() }

// CountRequests returns how many requests had this method and path.
func (s *Server) CountRequests(method, path string) int {
	return s.requests.Count(func(r string) bool { return r == method+" "+path })
}

// serve records, authenticates and applies failures before routing.
func (s *Server) serve(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(r.Method + " " + r.URL.Path)
		f := s.failures.Take(r.Method, r.URL.Path)
		s.mu.Lock()
		now := s.now()
		s.mu.Unlock()

		h := w.Header()
		h.Set("Date", now.Format(http.TimeFormat))
		h.Set("X-GitHub-Request-Id", fmt.Sprintf("FAKE:%d", now.UnixNano()))
		h.Set("X-RateLimit-Limit", "5000")
		h.Set("X-RateLimit-Remaining", "4999")
		h.Set("X-RateLimit-Used", "1")
		h.Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(time.Hour).Unix(), 10))
		h.Set("X-RateLimit-Resource", "core")

		if !s.authorized(r.Header.Get("Authorization")) {
			writeError(w, http.StatusUnauthorized, "Bad credentials", "https://docs.github.com/rest")
			return
		}
		if f != nil {
			if !fake.Hold(r.Context(), f.Delay) {
				return
			}
			if f.Status != 0 {
				s.writeFailure(w, f, now)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(h string) bool {
	scheme, tok, ok := strings.Cut(h, " ")
	return ok && (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "token")) && tok == s.Token
}

func (s *Server) writeFailure(w http.ResponseWriter, f *Failure, now time.Time) {
	h := w.Header()
	if f.Example != "" {
		raw, err := examples.ReadFile("testdata/" + f.Example + ".json")
		if err != nil {
			panic("githubtest: no example " + f.Example)
		}
		h.Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(f.Status)
		_, _ = w.Write(raw)
		return
	}
	if f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(f.RetryAfter.Seconds()))))
	}
	msg, doc := f.Message, "https://docs.github.com/rest"
	switch {
	case f.RateLimit:
		h.Set("X-RateLimit-Remaining", "0")
		h.Set("X-RateLimit-Used", "5000")
		reset := f.Reset
		if reset <= 0 {
			reset = time.Minute
		}
		h.Set("X-RateLimit-Reset", strconv.FormatInt(now.Add(reset).Unix(), 10))
		if msg == "" {
			msg = exampleMessage("rate_limit_primary")
		}
		doc = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
	case f.Secondary:
		if msg == "" {
			msg = exampleMessage("rate_limit_secondary")
		}
		doc = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#secondary-rate-limits"
	}
	if msg == "" {
		msg = http.StatusText(f.Status)
	}
	writeError(w, f.Status, msg, doc)
}

// writeJSON writes v with GitHub's content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is GitHub's error body.
type apiError struct {
	Message          string       `json:"message"`
	Errors           []fieldError `json:"errors,omitempty"`
	DocumentationURL string       `json:"documentation_url"`
	Status           string       `json:"status"`
}

type fieldError struct {
	Resource string `json:"resource"`
	Field    string `json:"field,omitempty"`
	Code     string `json:"code"`
	Message  string `json:"message,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg, doc string) {
	writeJSON(w, status, apiError{Message: msg, DocumentationURL: doc, Status: strconv.Itoa(status)})
}

// writeValidation writes GitHub's 422 "Validation Failed" with one field error.
func writeValidation(w http.ResponseWriter, doc string, fe fieldError) {
	writeJSON(w, http.StatusUnprocessableEntity, apiError{
		Message: "Validation Failed", Errors: []fieldError{fe}, DocumentationURL: doc, Status: "422",
	})
}

func notFound(w http.ResponseWriter, doc string) {
	writeError(w, http.StatusNotFound, "Not Found", doc)
}

// decode reads a JSON request body, answering 400 like GitHub if it is not JSON.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "Problems parsing JSON", "https://docs.github.com/rest")
		return false
	}
	return true
}

// page slices n items by the request's per_page (default 30, at most 100)
// and page (from 1), setting GitHub's Link header, and returns the bounds.
func page(w http.ResponseWriter, r *http.Request, n int) (from, to int) {
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per <= 0 {
		per = 30
	}
	per = min(per, 100)
	p, err := strconv.Atoi(q.Get("page"))
	if err != nil || p <= 0 {
		p = 1
	}
	last := max((n+per-1)/per, 1)
	link := func(pg int, rel string) string {
		q.Set("page", strconv.Itoa(pg))
		q.Set("per_page", strconv.Itoa(per))
		return fmt.Sprintf(`<http://%s%s?%s>; rel="%s"`, r.Host, r.URL.Path, q.Encode(), rel)
	}
	var links []string
	if p > 1 {
		links = append(links, link(p-1, "prev"), link(1, "first"))
	}
	if p < last {
		links = append(links, link(p+1, "next"), link(last, "last"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	from = min((p-1)*per, n)
	return from, min(from+per, n)
}

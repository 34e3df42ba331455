// Package supabasetest is a fake Supabase project for tests: the API
// gateway's key check, PostgREST's root and RPC endpoint, GoTrue's health and
// Storage's status routes, with each service's documented answers and error
// bodies, and failures (down services, 429 with Retry-After, slow answers,
// a missing ping() function) on demand.
package supabasetest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opscontrolroom/opsd/adapters/internal/fake"
)

// DefaultKey is the API key a new Server accepts.
const DefaultKey = "eyJfake.service_role.key"

// Services, for SetDown and Failure.Service.
const (
	REST    = "rest"
	Auth    = "auth"
	Storage = "storage"
)

// Server is a fake Supabase project. Its methods are safe for concurrent use.
type Server struct {
	// URL is the project URL, to use as adapters.Options.BaseURL.
	URL string
	// Key is the accepted API key (apikey header and bearer token).
	Key string

	srv *httptest.Server

	mu       sync.Mutex
	down     map[string]int
	noPing   bool
	pingBody string
	failures fake.Failures[Failure]
	requests fake.Log[string]
}

// New starts a Server, closed when the test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{Key: DefaultKey, down: map[string]int{}, pingBody: `"pong"`}
	m := http.NewServeMux()
	m.HandleFunc("GET /rest/v1/{$}", s.restRoot)
	m.HandleFunc("POST /rest/v1/rpc/ping", s.ping)
	m.HandleFunc("GET /auth/v1/health", s.authHealth)
	m.HandleFunc("GET /storage/v1/status", s.storageStatus)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "no Route matched with those values"})
	})
	s.srv = httptest.NewServer(s.gateway(m))
	s.URL = s.srv.URL
	tb.Cleanup(s.srv.Close)
	return s
}

// SetDown makes a service (REST, Auth, Storage) answer status (e.g. 503) until
// set back to 0.
func (s *Server) SetDown(service string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down[service] = status
}

// RemovePing makes the ping() RPC unknown to PostgREST (404 PGRST202), as in
// a project where the function was never created.
func (s *Server) RemovePing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noPing = true
}

// SetPingAnswer sets the raw JSON body ping() answers; default "pong".
func (s *Server) SetPingAnswer(body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pingBody = body
}

// Failure makes matching requests fail; register it with Server.Fail.
type Failure struct {
	Path       string        // URL path prefix; matches any when empty
	Times      int           // 0 means 1, negative means every request
	Status     int           // default 500 (0 with Delay alone: answer normally)
	RetryAfter time.Duration // sets Retry-After (whole seconds, rounded up)
	Delay      time.Duration // hold the answer back, or until the client gives up
}

// Fail registers a failure; failures match in registration order.
func (s *Server) Fail(f Failure) {
	if f.Status == 0 && f.Delay == 0 {
		f.Status = http.StatusInternalServerError
	}
	s.failures.Add("", f.Path, f.Times, f)
}

// Requests returns "METHOD /path" for every request received, in order.
func (s *Server) Requests() []string { return s.requests.All() }

// gateway records requests, checks the API key as Supabase's gateway (Kong)
// does, and applies failures.
func (s *Server) gateway(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(r.Method + " " + r.URL.Path)
		f := s.failures.Take(r.Method, r.URL.Path)

		key := r.Header.Get("apikey")
		switch {
		case key == "":
			writeJSON(w, http.StatusUnauthorized, map[string]any{
				"message": "No API key found in request", "hint": "No `apikey` request header or url param was found.",
			})
			return
		case key != s.Key:
			writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."})
			return
		case r.Header.Get("Authorization") != "" && r.Header.Get("Authorization") != "Bearer "+s.Key:
			writeJSON(w, http.StatusUnauthorized, map[string]any{"code": "PGRST301", "details": nil, "hint": nil, "message": "JWSError JWSInvalidSignature"})
			return
		}
		if f != nil {
			if !fake.Hold(r.Context(), f.Delay) {
				return
			}
			if f.Status != 0 {
				if f.RetryAfter > 0 {
					w.Header().Set("Retry-After", strconv.Itoa(int((f.RetryAfter+time.Second-1)/time.Second)))
				}
				writeJSON(w, f.Status, map[string]any{"message": http.StatusText(f.Status)})
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// isDown answers for a down service with the gateway's upstream error.
func (s *Server) isDown(w http.ResponseWriter, service string) bool {
	s.mu.Lock()
	st := s.down[service]
	s.mu.Unlock()
	if st == 0 {
		return false
	}
	writeJSON(w, st, map[string]any{"message": "An invalid response was received from the upstream server"})
	return true
}

func (s *Server) restRoot(w http.ResponseWriter, _ *http.Request) {
	if s.isDown(w, REST) {
		return
	}
	w.Header().Set("Content-Type", "application/openapi+json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"swagger": "2.0",
		"info":    map[string]any{"title": "standard public schema", "version": "12.2.3"},
		"paths":   map[string]any{"/": map[string]any{}, "/rpc/ping": map[string]any{}},
	})
}

func (s *Server) ping(w http.ResponseWriter, _ *http.Request) {
	if s.isDown(w, REST) {
		return
	}
	s.mu.Lock()
	missing, body := s.noPing, s.pingBody
	s.mu.Unlock()
	if missing {
		writeJSON(w, http.StatusNotFound, map[string]any{
			"code":    "PGRST202",
			"details": "Searched for the function public.ping without parameters or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
			"hint":    nil,
			"message": "Could not find the function public.ping without parameters in the schema cache",
		})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write([]byte(body))
}

func (s *Server) authHealth(w http.ResponseWriter, _ *http.Request) {
	if s.isDown(w, Auth) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"version": "v2.170.0", "name": "GoTrue", "description": "GoTrue is a user registration and authentication API",
	})
}

func (s *Server) storageStatus(w http.ResponseWriter, _ *http.Request) {
	if s.isDown(w, Storage) {
		return
	}
	w.WriteHeader(http.StatusOK)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

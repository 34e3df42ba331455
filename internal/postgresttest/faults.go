package postgresttest

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// FaultKind says what an injected fault does to a request.
type FaultKind int

// Fault kinds.
const (
	// FaultStatus answers Status (default 503) with Body; the request is not executed.
	FaultStatus FaultKind = iota + 1
	// FaultRateLimit answers 429 with a Retry-After header; the request is not executed.
	FaultRateLimit
	// FaultLatency waits Delay, then serves the request normally.
	FaultLatency
	// FaultDrop closes the connection before the request is executed.
	FaultDrop
	// FaultLoseResponse executes and commits the request, then closes the
	// connection without answering: the client cannot know it succeeded.
	FaultLoseResponse
)

// String names the kind, for logs and reports.
func (k FaultKind) String() string {
	switch k {
	case FaultStatus:
		return "status"
	case FaultRateLimit:
		return "rate_limit"
	case FaultLatency:
		return "latency"
	case FaultDrop:
		return "drop"
	case FaultLoseResponse:
		return "lose_response"
	}
	return "unknown"
}

// Fault is one injected failure rule. Rules are tried in the order they were
// injected; the first active rule that matches a request is applied to it.
type Fault struct {
	Kind FaultKind

	Status     int           // FaultStatus: the status to answer (default 503)
	Body       string        // FaultStatus, FaultRateLimit: the body (default a PostgREST JSON error)
	RetryAfter time.Duration // FaultRateLimit: the Retry-After header, whole seconds (default 1 s)
	Delay      time.Duration // FaultLatency: how long to wait

	// Method and Path restrict the rule to matching requests. Path is the
	// path under /rest/v1 ("rpc/claim_run", "run_events"); empty matches any.
	Method string
	Path   string

	// Times is how many requests the rule applies to (0 means once, unless
	// For is set). For keeps the rule active for that long after Inject.
	Times int
	For   time.Duration
	// Probability, when between 0 and 1 exclusive, applies the rule to each
	// matching request with that chance (for chaos runs).
	Probability float64
}

type rule struct {
	Fault
	left  int // remaining applications; -1 for unlimited within the window
	until time.Time
}

// Stats counts what the server did, for chaos reports.
type Stats struct {
	Requests       int64 // requests received
	Executed       int64 // requests whose transaction ran
	Committed      int64 // requests whose transaction committed
	Status         int64 // FaultStatus answers
	RateLimited    int64 // FaultRateLimit answers
	Delayed        int64 // FaultLatency applications
	Dropped        int64 // connections dropped before executing
	LostResponses  int64 // responses dropped after commit
	OutageRejected int64 // requests refused during an Outage
	HTTP2          int64 // requests served over HTTP/2
}

type faults struct {
	mu     sync.Mutex
	rules  []*rule
	outage time.Time
	stats  Stats
}

// Inject adds a fault rule.
func (s *Server) Inject(f Fault) {
	r := &rule{Fault: f, left: f.Times}
	if f.For > 0 {
		r.until = time.Now().Add(f.For)
		if f.Times == 0 {
			r.left = -1
		}
	} else if f.Times == 0 {
		r.left = 1
	}
	s.faults.mu.Lock()
	s.faults.rules = append(s.faults.rules, r)
	s.faults.mu.Unlock()
}

// Outage makes every request fail with 503, as when PostgREST cannot reach
// the database, for d from now.
func (s *Server) Outage(d time.Duration) {
	s.faults.mu.Lock()
	s.faults.outage = time.Now().Add(d)
	s.faults.mu.Unlock()
}

// ClearFaults removes every fault rule and ends any outage.
func (s *Server) ClearFaults() {
	s.faults.mu.Lock()
	s.faults.rules = nil
	s.faults.outage = time.Time{}
	s.faults.mu.Unlock()
}

// Stats returns the counters so far.
func (s *Server) Stats() Stats {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.stats
}

func (f *faults) count(fn func(*Stats)) {
	f.mu.Lock()
	fn(&f.stats)
	f.mu.Unlock()
}

// next picks the fault for a request, if any, and counts the request. The
// second result is true during an outage.
func (f *faults) next(r *http.Request, path string) (*Fault, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Requests++
	if r.ProtoMajor == 2 {
		f.stats.HTTP2++
	}
	now := time.Now()
	if now.Before(f.outage) {
		f.stats.OutageRejected++
		return nil, true
	}
	keep := f.rules[:0]
	var picked *Fault
	for _, ru := range f.rules {
		expired := (!ru.until.IsZero() && now.After(ru.until)) || ru.left == 0
		if expired {
			continue
		}
		if picked == nil && ru.matches(r, path) {
			fault := ru.Fault
			picked = &fault
			if ru.left > 0 {
				ru.left--
			}
			if ru.left == 0 {
				continue
			}
		}
		keep = append(keep, ru)
	}
	f.rules = keep
	return picked, false
}

func (ru *rule) matches(r *http.Request, path string) bool {
	if ru.Method != "" && !strings.EqualFold(ru.Method, r.Method) {
		return false
	}
	if ru.Path != "" && strings.Trim(ru.Path, "/") != path {
		return false
	}
	if p := ru.Probability; p > 0 && p < 1 && rand.Float64() >= p {
		return false
	}
	return true
}

// drop closes the client's connection without an answer: by hijacking it
// under HTTP/1.1, or by aborting the stream under HTTP/2.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

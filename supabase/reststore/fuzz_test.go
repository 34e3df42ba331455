package reststore

// An internal test file: it reaches the REST client's unexported decoding
// (restError, restParseRetryAfter). It must not import pgtest, which imports
// this package.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opscontrolroom/opsd/executor"
)

var restErrorKinds = []error{executor.ErrNotFound, executor.ErrConflict, executor.ErrPermission,
	executor.ErrInvalidInput, executor.ErrTransient}

// FuzzRESTError: whatever a PostgREST, a gateway or a proxy answers with an
// error status, restError returns a typed error that names the operation and
// the status, and never panics.
func FuzzRESTError(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{400, `{"code":"22P02","message":"invalid input syntax for type uuid: \"x\"","details":null,"hint":null}`},
		{401, `{"code":"PGRST301","message":"JWT expired","details":null,"hint":null}`},
		{403, `{"code":"42501","message":"permission denied for table runs","details":null,"hint":null}`},
		{404, `{"code":"PGRST202","message":"Could not find the function public.claim_run","details":"Searched for ...","hint":"Perhaps you meant"}`},
		{406, `{"code":"PGRST116","message":"JSON object requested, multiple (or no) rows returned","details":"The result contains 0 rows","hint":null}`},
		{409, `{"code":"23505","message":"duplicate key value violates unique constraint","details":"Key (run_id, seq)=(x, 1) already exists.","hint":null}`},
		{429, ``}, {500, `<html><body>502 Bad Gateway</body></html>`}, {502, "upstream connect error"},
		{503, `{"code":"PGRST001","message":"Database client error. Retrying the connection.","details":null,"hint":null}`},
		{500, `{"code":"40001","message":"could not serialize access"}`}, {418, `{"message":7}`}, {400, `{"details":""}`},
		{500, "\xff\xfe" + strings.Repeat("é", 150)}, {400, `[]`}, {400, `null`}, {599, `{"code":"","message":""}`},
	} {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 400 + (status%200+200)%200
		}
		se := restError("claim_run", status, body)
		if se == nil {
			t.Fatal("restError returned nil")
		}
		known := false
		for _, k := range restErrorKinds {
			known = known || se.Kind == k
		}
		if !known {
			t.Fatalf("kind %v is not one of the store's error kinds", se.Kind)
		}
		if se.Status != status || se.Op != "claim_run" || se.Code == "" {
			t.Fatalf("error lost its status, op or code: %+v", se)
		}
		msg := se.Error()
		if !strings.HasPrefix(msg, "claim_run: ") || len(msg) <= len("claim_run: ") {
			t.Fatalf("error does not name the operation: %q", msg)
		}
		var pe struct {
			Code *string `json:"code"`
		}
		if status >= 500 && (json.Unmarshal(body, &pe) != nil || pe.Code == nil || *pe.Code == "") {
			if !executor.Retryable(se) {
				t.Fatalf("status %d without a SQLSTATE must be retryable, got %v", status, se.Kind)
			}
		}
	})
}

// FuzzRESTRetryAfter: a Retry-After header from anywhere yields a wait that
// is never negative.
func FuzzRESTRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "1", "120", " 3 ", "-1", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT",
		time.Now().Add(time.Minute).UTC().Format(http.TimeFormat), "9227000000", "99999999999999999999", "abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		d := restParseRetryAfter(v)
		if d < 0 {
			t.Fatalf("Retry-After %q gives a negative wait %s", v, d)
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 {
			if n <= 3600 && d != time.Duration(n)*time.Second {
				t.Fatalf("Retry-After %q gives %s", v, d)
			}
			if d > 24*time.Hour {
				t.Fatalf("Retry-After %q gives an unbounded wait %s", v, d)
			}
		}
	})
}

// fuzzTransport answers every request with the same status, header and body.
type fuzzTransport struct {
	status int
	header http.Header
	body   []byte
}

func (ft *fuzzTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
	}
	return &http.Response{StatusCode: ft.status, Header: ft.header.Clone(), Body: io.NopCloser(bytes.NewReader(ft.body)),
		Request: req, ProtoMajor: 1, ProtoMinor: 1}, nil
}

const fuzzRunID = "6f1c2a9e-3b1d-4c8e-9a57-0d2f4e6b8a10"

// restCalls are the store methods the daemon and the CLI use, each checking
// what it got back when it got no error.
var restCalls = []func(t *testing.T, ctx context.Context, s *Store) error{
	func(t *testing.T, ctx context.Context, s *Store) error {
		runs, err := s.ClaimRuns(ctx, executor.ClaimRequest{Worker: "w", Lane: "A", Limit: 2, Token: fuzzRunID})
		for i, r := range runs {
			if err == nil && r == nil {
				t.Fatalf("claim returned a nil run at %d", i)
			}
		}
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.Heartbeat(ctx, "w", []executor.Lease{{RunID: fuzzRunID, Worker: "w", Attempt: 1}}, 30*time.Second)
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.SetPhase(ctx, executor.Lease{RunID: fuzzRunID, Worker: "w", Attempt: 1}, executor.PhaseAction)
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.FinishRun(ctx, executor.Finish{Lease: executor.Lease{RunID: fuzzRunID, Worker: "w", Attempt: 1}, Status: executor.StatusSuccess})
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.ReapStale(ctx)
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.AppendRows(ctx, "w", executor.Rows{Events: []executor.Event{{RunID: fuzzRunID, Seq: 1, Level: "info", Source: "System", Message: "m", Attempt: 1}}})
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		tpl, err := s.GetTemplate(ctx, "slug")
		if err == nil && tpl == nil {
			t.Fatal("GetTemplate returned neither a template nor an error")
		}
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		r, err := s.GetRun(ctx, fuzzRunID)
		if err == nil && r == nil {
			t.Fatal("GetRun returned neither a run nor an error")
		}
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		r, err := s.SubmitRun(ctx, executor.NewRun{Env: "dev", Kind: "healthcheck"})
		if err == nil && r == nil {
			t.Fatal("SubmitRun returned neither a run nor an error")
		}
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.ListEvents(ctx, fuzzRunID, 0, 10)
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		runs, err := s.ListRuns(ctx, executor.RunFilter{Limit: 5})
		for i, r := range runs {
			if err == nil && r == nil {
				t.Fatalf("ListRuns returned a nil run at %d", i)
			}
		}
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.LaneCounts(ctx)
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.CancelRun(ctx, fuzzRunID)
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.ApproveRun(ctx, fuzzRunID, "ops")
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error {
		_, err := s.SchemaVersion(ctx)
		return err
	},
	func(t *testing.T, ctx context.Context, s *Store) error { return s.Ping(ctx) },
}

// FuzzRESTResponses: every store call survives any answer (status, body,
// Retry-After) without panicking, and fails with the store's typed error.
func FuzzRESTResponses(f *testing.F) {
	run := `{"id":"` + fuzzRunID + `","env":"dev","kind":"healthcheck","status":"running","lane":"A","attempt":1,"next_seq":3,"plan":null,"input":{}}`
	for _, s := range []struct {
		call   uint8
		status int
		body   string
	}{
		{0, 200, "[" + run + "]"}, {0, 200, "[]"}, {0, 200, "[null]"}, {0, 200, "{}"}, {0, 200, `[{"id":7}]`},
		{1, 200, `[{"run_id":"` + fuzzRunID + `","state":"owned","approved":false}]`},
		{2, 200, "true"}, {2, 200, `"yes"`}, {3, 200, "false"}, {4, 200, `[{"run_id":"x","action":"requeued"}]`},
		{5, 201, ""}, {6, 200, `[{"id":"x","slug":"s","template_yaml":"version: 1"}]`}, {6, 200, "[null]"},
		{7, 200, "[" + run + "]"}, {7, 200, "[null]"}, {8, 201, "[" + run + "]"}, {8, 201, "[null]"}, {8, 201, ""},
		{9, 200, `[{"run_id":"x","seq":1,"ts":"not a time"}]`}, {11, 200, `[{"lane":"A","queued":"x"}]`},
		{12, 200, "true"}, {13, 200, "null"}, {14, 200, "null"}, {15, 200, `"pong"`},
		{0, 503, `{"code":"PGRST001","message":"Database client error"}`}, {1, 429, ""}, {3, 500, "<html>"},
		{7, 406, `{"code":"PGRST116"}`}, {8, 403, `{"code":"42501","message":"permission denied"}`},
	} {
		f.Add(s.call, s.status, []byte(s.body), "1")
	}
	f.Fuzz(func(t *testing.T, call uint8, status int, body []byte, retryAfter string) {
		if status < 100 || status > 999 {
			status = 200 + (status%400+400)%400
		}
		header := http.Header{"Content-Type": {"application/json"}}
		if retryAfter != "" {
			header.Set("Retry-After", retryAfter)
		}
		s, err := New(Config{URL: "https://fuzz.supabase.co", ServiceRoleKey: "k", MaxRetries: -1,
			HTTPClient: &http.Client{Transport: &fuzzTransport{status: status, header: header, body: body}}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = restCalls[int(call)%len(restCalls)](t, ctx, s)
		if err == nil {
			return
		}
		var se *executor.StoreError
		if !errors.As(err, &se) {
			t.Fatalf("error is not a *executor.StoreError: %v", err)
		}
		if err.Error() == "" {
			t.Fatal("empty error message")
		}
	})
}

// The fuzzers found three bugs, all fixed, whose inputs stay in the seed
// corpus: a Retry-After overflow (restParseRetryAfter caps the delay at a
// day), a null row in a 2xx answer being dereferenced, and SubmitRun's
// untyped row-count error (both now an ErrInvalidInput StoreError).

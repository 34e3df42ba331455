package githubtest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, srv *githubtest.Server, auth, method, path, body string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+strings.TrimPrefix(path, "/"), strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &out.body)
	return out
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	srv := githubtest.New(t)
	srv.AddRepo("o/r", "main")
	tests := []struct {
		name, auth string
		status     int
	}{
		{"bearer", "Bearer " + srv.Token, 200},
		{"token scheme", "token " + srv.Token, 200},
		{"missing", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"basic", "Basic " + srv.Token, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, srv, tt.auth, "GET", "/repos/o/r", "")
			assert.Equal(t, tt.status, r.status)
			if tt.status == 401 {
				assert.Equal(t, "Bad credentials", r.body["message"])
				assert.NotEmpty(t, r.body["documentation_url"])
			}
		})
	}
}

func TestNotFoundShapes(t *testing.T) {
	t.Parallel()
	srv := githubtest.New(t)
	srv.AddRepo("o/r", "main")
	auth := "Bearer " + srv.Token
	for _, path := range []string{"/repos/o/missing", "/repos/o/r/git/ref/heads/nope", "/nowhere", "/repos/o/r/actions/runs/999"} {
		r := do(t, srv, auth, "GET", path, "")
		assert.Equal(t, 404, r.status, path)
		assert.Equal(t, "Not Found", r.body["message"], path)
		assert.Contains(t, r.body["documentation_url"], "https://docs.github.com/rest", path)
	}
}

func TestRefUpdateMustFastForward(t *testing.T) {
	t.Parallel()
	srv := githubtest.New(t)
	base := srv.AddRepo("o/r", "main")
	auth := "Bearer " + srv.Token
	srv.SetBranch("o/r", "other", base)
	ahead := srv.AddCommit("o/r", "main", "ahead", map[string]string{"a": "1"})
	diverged := srv.AddCommit("o/r", "other", "diverged", map[string]string{"b": "1"})

	r := do(t, srv, auth, "PATCH", "/repos/o/r/git/refs/heads/main", `{"sha":"`+diverged+`"}`)
	assert.Equal(t, 422, r.status)
	assert.Equal(t, "Update is not a fast forward", r.body["message"])

	r = do(t, srv, auth, "PATCH", "/repos/o/r/git/refs/heads/main", `{"sha":"`+diverged+`","force":true}`)
	assert.Equal(t, 200, r.status)
	sha, _ := srv.Branch("o/r", "main")
	assert.Equal(t, diverged, sha)
	assert.NotEqual(t, ahead, sha)

	r = do(t, srv, auth, "POST", "/repos/o/r/git/refs", `{"ref":"refs/heads/main","sha":"`+base+`"}`)
	assert.Equal(t, 422, r.status)
	assert.Equal(t, "Reference already exists", r.body["message"])

	r = do(t, srv, auth, "POST", "/repos/o/r/git/refs", `not json`)
	assert.Equal(t, 400, r.status)
}

func TestPaginationLinks(t *testing.T) {
	t.Parallel()
	srv := githubtest.New(t)
	sha := srv.AddRepo("o/r", "main")
	for i := range 5 {
		srv.AddCheckRun("o/r", sha, fmt.Sprintf("job%d", i), "completed", "success")
	}
	auth := "Bearer " + srv.Token
	// Distinct names, so filter=latest keeps all five.
	r := do(t, srv, auth, "GET", "/repos/o/r/commits/"+sha+"/check-runs?per_page=2&page=2", "")
	require.Equal(t, 200, r.status)
	link := r.header.Get("Link")
	assert.Contains(t, link, `page=3&per_page=2>; rel="next"`)
	assert.Contains(t, link, `page=3&per_page=2>; rel="last"`)
	assert.Contains(t, link, `page=1&per_page=2>; rel="prev"`)
	assert.Len(t, r.body["check_runs"], 2)
}

func TestInjectedFailures(t *testing.T) {
	t.Parallel()
	srv := githubtest.New(t)
	srv.AddRepo("o/r", "main")
	auth := "Bearer " + srv.Token

	srv.Fail(githubtest.Failure{Path: "/repos/o/r", Status: 429, RetryAfter: 1500 * time.Millisecond, Times: 2})
	for range 2 {
		r := do(t, srv, auth, "GET", "/repos/o/r", "")
		assert.Equal(t, 429, r.status)
		assert.Equal(t, "2", r.header.Get("Retry-After"))
	}
	assert.Equal(t, 200, do(t, srv, auth, "GET", "/repos/o/r", "").status, "the failure is used up")

	srv.Fail(githubtest.Failure{RateLimit: true})
	r := do(t, srv, auth, "GET", "/repos/o/r", "")
	assert.Equal(t, 403, r.status)
	assert.Equal(t, "0", r.header.Get("X-RateLimit-Remaining"))
	assert.Contains(t, r.body["message"], "rate limit")

	srv.Fail(githubtest.Failure{Secondary: true, Status: 429})
	r = do(t, srv, auth, "GET", "/repos/o/r", "")
	assert.Equal(t, 429, r.status)
	assert.Contains(t, r.body["documentation_url"], "#secondary-rate-limits")
}

func TestDispatchedRunProgresses(t *testing.T) {
	t.Parallel()
	srv := githubtest.New(t)
	srv.AddRepo("o/r", "main")
	srv.AddWorkflow("o/r", githubtest.Workflow{File: "d.yml", Conclusion: "failure"})
	auth := "Bearer " + srv.Token

	r := do(t, srv, auth, "POST", "/repos/o/r/actions/workflows/d.yml/dispatches", `{"ref":"main"}`)
	require.Equal(t, 204, r.status, "no return_run_details: 204 as before 2026")
	r = do(t, srv, auth, "POST", "/repos/o/r/actions/workflows/d.yml/dispatches", `{"ref":"main","return_run_details":true}`)
	require.Equal(t, 200, r.status)
	id := r.body["workflow_run_id"].(float64)
	path := "/repos/o/r/actions/runs/" + jsonNum(id)

	var seen []string
	for range 4 {
		r := do(t, srv, auth, "GET", path, "")
		require.Equal(t, 200, r.status)
		seen = append(seen, r.body["status"].(string))
	}
	assert.Equal(t, []string{"queued", "in_progress", "completed", "completed"}, seen)
	st, concl, ok := srv.RunStatus("o/r", int64(id))
	require.True(t, ok)
	assert.Equal(t, "completed", st)
	assert.Equal(t, "failure", concl)

	r = do(t, srv, auth, "GET", "/repos/o/r/actions/workflows/d.yml/runs?event=workflow_dispatch&created=%3E%3D2000-01-01T00:00:00Z", "")
	assert.EqualValues(t, 2, r.body["total_count"])
	r = do(t, srv, auth, "GET", "/repos/o/r/actions/runs?created=%3C2000-01-01", "")
	assert.EqualValues(t, 0, r.body["total_count"])
	r = do(t, srv, auth, "GET", "/repos/o/r/actions/runs?status=failure", "")
	assert.EqualValues(t, 1, r.body["total_count"])
}

func jsonNum(f float64) string {
	b, _ := json.Marshal(int64(f))
	return string(b)
}

package github_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/github"
	"github.com/opscontrolroom/opsd/adapters/github/githubtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const repo = "acme/app"

// setup starts a fake with repo (default branch main) and a client for it
// with fast retries.
func setup(t *testing.T) (*github.Client, *githubtest.Server) {
	t.Helper()
	srv := githubtest.New(t)
	srv.AddRepo(repo, "main")
	return newClient(t, srv), srv
}

func newClient(t *testing.T, srv *githubtest.Server) *github.Client {
	t.Helper()
	c, err := github.New(adapters.Options{
		Token: srv.Token, BaseURL: srv.URL,
		Timeout: 5 * time.Second, MaxRetries: 2, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
	})
	require.NoError(t, err)
	c.DispatchPoll = 5 * time.Millisecond
	c.DispatchTimeout = 2 * time.Second
	return c
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// calls records adapter calls.
type calls struct {
	mu sync.Mutex
	c  []adapters.Call
}

func (r *calls) RecordCall(_ context.Context, c adapters.Call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.c = append(r.c, c)
}

func (r *calls) all() []adapters.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]adapters.Call(nil), r.c...)
}

// Package benchserver gives the bench's REST paths the PostgREST-compatible
// test server (internal/postgresttest) over each scenario's database. It is
// for cmd/opsbench and the bench's tests only: the opsd binary must not link
// it (cmd/opsd/deps_test.go), and `opsd bench` uses a real PostgREST instead.
package benchserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/opscontrolroom/opsd/internal/bench"
	"github.com/opscontrolroom/opsd/internal/postgresttest"
)

// PostgREST starts a test server over the database at dbURL, with a fresh
// JWT secret, and hands out its service-role key.
func PostgREST(_ context.Context, dbURL string) (*bench.PostgREST, error) {
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	srv, err := postgresttest.Start(dbURL, "opsd-bench-jwt-secret-"+hex.EncodeToString(secret))
	if err != nil {
		return nil, fmt.Errorf("start the PostgREST-compatible test server: %w", err)
	}
	return &bench.PostgREST{URL: srv.URL, ServiceRoleKey: srv.ServiceKey(), Close: srv.Close}, nil
}

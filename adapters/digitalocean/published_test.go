package digitalocean_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opscontrolroom/opsd/adapters"
	"github.com/opscontrolroom/opsd/adapters/digitalocean"
	"github.com/opscontrolroom/opsd/adapters/digitalocean/dotest"
)

// The adapter reads DigitalOcean's own published list example.
func TestPublishedDropletsExample(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	srv.Fail(dotest.Failure{Method: "GET", PathPrefix: "/v2/droplets", Example: "droplets_all"})
	ds, err := c.Droplets(context.Background(), "", "")
	require.NoError(t, err)
	require.Len(t, ds, 3)
	assert.Equal(t, digitalocean.Droplet{ID: 3164444, Name: "example.com", Status: "active", PublicIPv4: "192.241.165.154",
		Region: "nyc3", Tags: []string{"web", "env:prod"}}, ds[0])
	assert.Equal(t, "stage.example.com", ds[2].Name)
}

// A 429 with the published body and ratelimit-reset header: the adapter's
// error says when the limit resets, and the reset past the inline budget is
// not retried early.
func TestPublishedRateLimit(t *testing.T) {
	t.Parallel()
	srv, c := setup(t)
	srv.Fail(dotest.Failure{Method: "GET", PathPrefix: "/v2/droplets", Status: http.StatusTooManyRequests, Times: -1})
	_, err := c.Droplets(context.Background(), "", "")
	var ae *adapters.APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, 429, ae.Status)
	assert.Contains(t, err.Error(), "API rate limit exceeded.")
	assert.InDelta(t, time.Minute.Seconds(), ae.RetryAfter.Seconds(), 2, "ratelimit-reset is a unix time a minute ahead")
	assert.True(t, adapters.IsTemporary(err))
	assert.Equal(t, 1, srv.CountRequests("GET", "/v2/droplets"))
}

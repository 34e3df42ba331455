package fake

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestFailuresMatchInOrderAndCount(t *testing.T) {
	t.Parallel()
	var q Failures[string]
	q.Add("POST", "/v1/a", 2, "post-a")
	q.Add("", "/v1", 0, "any-v1") // 0 counts as 1
	q.Add("", "", -1, "always")

	take := func(method, path string) string {
		if f := q.Take(method, path); f != nil {
			return *f
		}
		return "none"
	}
	assert.Equal(t, "any-v1", take("GET", "/v1/a"), "the method must match")
	assert.Equal(t, "post-a", take("POST", "/v1/a/b"))
	assert.Equal(t, "post-a", take("POST", "/v1/a"))
	assert.Equal(t, "always", take("POST", "/v1/a"), "used up failures are gone")
	assert.Equal(t, "always", take("GET", "/other"))
	assert.Equal(t, "always", take("GET", "/other"), "a negative count never runs out")

	var empty Failures[int]
	assert.Nil(t, empty.Take("GET", "/"))
}

func TestLog(t *testing.T) {
	t.Parallel()
	var l Log[string]
	assert.Equal(t, 1, l.Add("GET /a"))
	assert.Equal(t, 2, l.Add("GET /b"))
	all := l.All()
	all[0] = "changed"
	assert.Equal(t, []string{"GET /a", "GET /b"}, l.All(), "All returns a copy")
	assert.Equal(t, 1, l.Count(func(r string) bool { return r == "GET /b" }))
}

func TestHold(t *testing.T) {
	t.Parallel()
	assert.True(t, Hold(context.Background(), 0))
	assert.True(t, Hold(context.Background(), time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.False(t, Hold(ctx, time.Hour), "a client that went away ends the hold")
}

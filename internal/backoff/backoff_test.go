package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStepDoublesUpToMax(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: time.Second}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 60: time.Second} {
		assert.Equal(t, want, p.Step(n), "attempt %d", n)
	}
}

func TestDelayIsJitteredWithinHalfAndFullStep(t *testing.T) {
	p := Policy{Min: 100 * time.Millisecond, Max: time.Second}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := p.Delay(3)
		assert.GreaterOrEqual(t, d, 200*time.Millisecond)
		assert.LessOrEqual(t, d, 400*time.Millisecond)
		seen[d] = true
	}
	assert.Greater(t, len(seen), 1, "delays are jittered")
}

func TestDefaults(t *testing.T) {
	p := Policy{}.WithDefaults()
	assert.Equal(t, DefaultMin, p.Min)
	assert.Equal(t, DefaultMax, p.Max)
	assert.Equal(t, time.Second, Policy{Min: time.Second, Max: time.Millisecond}.WithDefaults().Max, "Max is raised to Min")
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	assert.ErrorIs(t, Sleep(ctx, time.Hour), context.Canceled)
	assert.Less(t, time.Since(start), time.Minute)
	assert.NoError(t, Sleep(context.Background(), time.Millisecond))
}

func TestJitterSpreadsAPeriod(t *testing.T) {
	assert.Zero(t, Jitter(0))
	assert.Zero(t, Jitter(-time.Second))
	const d = 100 * time.Millisecond
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		j := Jitter(d)
		require.GreaterOrEqual(t, j, d/2)
		require.Less(t, j, 3*d/2)
		lo, hi = min(lo, j), max(hi, j)
	}
	assert.Less(t, lo, 60*time.Millisecond, "the low end of the spread is reached")
	assert.Greater(t, hi, 140*time.Millisecond, "the high end of the spread is reached")
}

package uuid

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// canonical is a version 4, variant 1 UUID in lower-case canonical form.
var canonical = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNew(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		require.Regexp(t, canonical, id)
		assert.False(t, seen[id], "repeated %s", id)
		seen[id] = true
	}
}

// TestNewUsesEveryRandomBit: over many UUIDs, every hex digit outside the
// version and variant positions takes more than one value (no byte is left
// zero, none is lost to formatting).
func TestNewUsesEveryRandomBit(t *testing.T) {
	t.Parallel()
	values := make([]map[byte]bool, 36)
	for i := range values {
		values[i] = map[byte]bool{}
	}
	for range 200 {
		id := New()
		for i := range len(id) {
			values[i][id[i]] = true
		}
	}
	for i, v := range values {
		switch i {
		case 8, 13, 18, 23: // dashes
			assert.Equal(t, map[byte]bool{'-': true}, v, "position %d", i)
		case 14: // version
			assert.Equal(t, map[byte]bool{'4': true}, v, "position %d", i)
		case 19: // variant: 8, 9, a or b
			assert.Len(t, v, 4, "position %d", i)
		default:
			assert.Greater(t, len(v), 8, "position %d", i)
		}
	}
}

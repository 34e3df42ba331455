package deploy_test

import (
	"testing"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

// TestMain gives the webhook SQL test a real PostgreSQL (pgtest) and checks
// for leaked goroutines.
func TestMain(m *testing.M) { pgtest.Main(m) }

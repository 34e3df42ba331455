package migrations_test

import (
	"testing"

	"github.com/opscontrolroom/opsd/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

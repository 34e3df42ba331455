package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// developerDB stands for the database an operator exported for opsd. It
// cannot be reached: had Run used it, it would have failed.
const developerDB = "postgres://postgres:secret@developer-real-database.invalid:5432/prod?sslmode=disable"

func TestMain(m *testing.M) {
	for _, k := range operatorSettings {
		if err := os.Setenv(k, developerDB); err != nil {
			panic(err)
		}
	}
	Main(m)
}

// TestNeverTheDevelopersDatabase: Run ignored DATABASE_URL, and removed the
// operator's settings from the environment.
func TestNeverTheDevelopersDatabase(t *testing.T) {
	t.Parallel()
	assert.NotEqual(t, developerDB, AdminURL())
	for _, k := range operatorSettings {
		_, set := os.LookupEnv(k)
		assert.False(t, set, "%s is still in the tests' environment", k)
	}
	db := NewDB(t)
	var one int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT 1 FROM supabase_migrations.schema_migrations LIMIT 1`).Scan(&one))
}

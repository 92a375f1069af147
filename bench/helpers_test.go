package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
	"github.com/uptrace/bun/migrate"

	"github.com/meshgate/meshgate/products"
)

const pgEnv = "MESHGATE_TEST_POSTGRES"

// pgBase returns the PostgreSQL DSN of the environment or skips.
func pgBase(b *testing.B) string {
	dsn := os.Getenv(pgEnv)
	if dsn == "" {
		b.Skipf("PostgreSQL benchmark: set %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable", pgEnv)
	}
	return dsn
}

// pgSchema returns a fresh schema name that is dropped when b ends, and the
// DSN selecting it.
func pgSchema(b *testing.B, base, name string) (schema, dsn string) {
	var rnd [4]byte
	rand.Read(rnd[:])
	schema = "mgb_" + hex.EncodeToString(rnd[:]) + "_" + name
	b.Cleanup(func() {
		db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(base)))
		defer db.Close()
		if _, err := db.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`); err != nil {
			b.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return schema, u.String()
}

// openStore opens a product store on the backend ("sqlite" or "postgres").
func openStore(b *testing.B, backend string, d *products.Descriptor, m *migrate.Migrations) *products.Store {
	var dsn string
	if backend == "postgres" {
		_, dsn = pgSchema(b, pgBase(b), d.Name)
	} else {
		dsn = "sqlite:" + filepath.Join(b.TempDir(), d.Name+".db")
	}
	s, err := products.Open(context.Background(), d, dsn, m)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s)) + 0.5)
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

package products

import (
	"context"
	"sync"
	"testing"

	"github.com/meshgate/meshgate/products/pgtest"
)

// TestConcurrentStartsMigrateOnce: instances started together on a new
// PostgreSQL schema all open the store; the migrations run once, one
// instance at a time (an advisory lock per store), and each is recorded
// once.
func TestConcurrentStartsMigrateOnce(t *testing.T) {
	dsn := pgtest.New(t).DSN(testProduct.Name)
	ctx := context.Background()
	const instances = 6
	stores := make([]*Store, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range instances {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctx, testProduct, dsn, nil)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var rows []struct {
		Name  string
		Count int
	}
	if err := stores[0].DB.NewRaw("SELECT name, count(*) AS count FROM mg_framework_migrations GROUP BY name ORDER BY name").Scan(ctx, &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(frameworkMigrations.Sorted()) {
		t.Fatalf("%d migrations recorded, want %d: %+v", len(rows), len(frameworkMigrations.Sorted()), rows)
	}
	for _, r := range rows {
		if r.Count != 1 {
			t.Errorf("migration %s recorded %d times", r.Name, r.Count)
		}
	}
	// Every instance works on the migrated store.
	for i, s := range stores {
		if _, err := s.Latest(ctx); err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
}

package products

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/uptrace/bun/migrate"

	"github.com/meshgate/meshgate/products/pgtest"
)

// TestStreamStateMigratesStoresOfEitherBranch checks the framework
// migration that creates the streaming state (mg_outbox, mg_entity_counts,
// mg_key_positions) on stores created before it was merged: a store of the
// line of work that added it opens again unchanged, and a store whose
// per-key positions came from an earlier stand-in migration
// (20261130000000, since removed) keeps its positions, gets the other
// tables, its log counted per entity, and is migrated once.
func TestStreamStateMigratesStoresOfEitherBranch(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "storetest.db")
			if backend == "postgres" {
				dsn = pgtest.New(t).DSN(testProduct.Name)
			}
			ctx := context.Background()
			s := openTestStore(t, dsn)
			for _, code := range []string{"a", "b", "c"} {
				if err := addWidget(ctx, s, &widget{Code: code}); err != nil {
					t.Fatal(err)
				}
			}
			newest := func(s *Store, seq int64) bool {
				t.Helper()
				var got bool
				if _, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
					var err error
					got, err = tx.Newest(ctx, "src", "Thing", 7, seq)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				return got
			}
			if !newest(s, 10) {
				t.Fatal("the first position of a key is not the newest")
			}
			s.Close()

			// As the store looked on the other line: the stand-in
			// migration recorded, no publishing state, no counts.
			raw, err := Open(ctx, testProduct, dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{"DROP TABLE mg_outbox", "DROP TABLE mg_entity_counts"} {
				if _, err := raw.DB.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := raw.DB.NewDelete().TableExpr("mg_framework_migrations").Where("name = ?", "20261124000003").Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := raw.DB.NewInsert().Model(&migrate.Migration{Name: "20261130000000", GroupID: 2}).
				ModelTableExpr("mg_framework_migrations").Exec(ctx); err != nil {
				t.Fatal(err)
			}
			raw.Close()

			for range 2 { // the second open finds nothing to do
				s, err = Open(ctx, testProduct, dsn, nil)
				if err != nil {
					t.Fatalf("open the store of the other line: %v", err)
				}
				counts, err := s.EntityCounts(ctx)
				if err != nil || counts["Widget"] != 3 || len(counts) != 1 {
					t.Errorf("entity counts %v (%v), want Widget: 3", counts, err)
				}
				pending, latest, err := s.Backlog(ctx)
				if err != nil || pending != 3 || latest != 3 {
					t.Errorf("backlog %d of %d (%v), want 3 of 3", pending, latest, err)
				}
				var applied int
				if err := s.DB.NewSelect().TableExpr("mg_framework_migrations").Where("name = ?", "20261124000003").
					ColumnExpr("COUNT(*)").Scan(ctx, &applied); err != nil || applied != 1 {
					t.Errorf("the stream state migration is recorded %d times (%v), want once", applied, err)
				}
				s.Close()
			}
			s, err = Open(ctx, testProduct, dsn, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if newest(s, 9) {
				t.Error("a key's position recorded before the migration was lost: an older change counts as the newest")
			}
			if !newest(s, 11) {
				t.Error("a newer change of the key is not the newest")
			}
		})
	}
}

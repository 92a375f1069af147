package products

import (
	"context"
	"testing"
	"time"

	"github.com/meshgate/meshgate/products/pgtest"
)

// TestWriteExclusiveRestoresLockTimeout checks that the one statement
// taking an exclusive writer's lock leaves the session's lock_timeout as it
// found it for the writer's own statements.
func TestWriteExclusiveRestoresLockTimeout(t *testing.T) {
	s := openTestStore(t, pgtest.New(t).DSN(testProduct.Name))
	ctx := context.Background()
	var inside string
	if _, err := s.WriteExclusive(ctx, "test", 5*time.Second, func(ctx context.Context, tx *Tx) error {
		return tx.NewRaw("SELECT current_setting('lock_timeout')").Scan(ctx, &inside)
	}); err != nil {
		t.Fatal(err)
	}
	if inside != "0" {
		t.Errorf("lock_timeout inside the exclusive write = %q, want the session's 0", inside)
	}
}

package products

import (
	"context"
	"testing"
	"time"
)

// TestParkOncePerPosition: a change is parked once however often it is
// parked; a change applied is not parked (the caller checks Applied in the
// same transaction); a resolved one parked anew (a replay that failed on
// it again) is parked again, its resolution cleared.
func TestParkOncePerPosition(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		at := time.Now().UTC().Truncate(time.Microsecond)
		letter := func(seq int64, reason string) *DeadLetter {
			return &DeadLetter{Source: "orders", Sequence: seq, Entity: "Order", Key: 7, Topic: "t", Partition: 1, Offset: 9,
				Reason: reason, Attempts: 3, FirstFailureAt: at, LastFailureAt: at, MessageKey: `{"id":7}`, Event: `{}`}
		}
		park := func(d *DeadLetter) bool {
			t.Helper()
			var fresh bool
			if _, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
				var err error
				fresh, err = tx.Park(ctx, d)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return fresh
		}
		first := letter(5, "first")
		if !park(first) || first.ID == 0 || first.Status != Parked {
			t.Fatalf("first park: %+v", first)
		}
		again := letter(5, "again")
		if park(again) || again.ID != first.ID || again.Reason != "first" {
			t.Fatalf("second park of the same position: %+v", again)
		}
		if !park(letter(6, "other")) {
			t.Fatal("another position was not parked")
		}
		var resolved bool
		if _, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			var err error
			resolved, err = tx.Resolve(ctx, first.ID, "ops", "req-1")
			return err
		}); err != nil || !resolved {
			t.Fatalf("resolve: %v %v", resolved, err)
		}
		l, err := s.DeadLetters(ctx, DeadLetterQuery{Status: Resolved})
		if err != nil || len(l) != 1 || l[0].ResolvedBy == nil || *l[0].ResolvedBy != "ops" || l[0].Product != testProduct.Name {
			t.Fatalf("resolved: %+v %v", l, err)
		}
		anew := letter(5, "anew")
		if !park(anew) || anew.ID != first.ID || anew.Status != Parked || anew.Reason != "anew" || anew.ResolvedAt != nil {
			t.Fatalf("a resolved change parked anew: %+v", anew)
		}
		n, err := s.ParkedThrough(ctx, "orders", 5)
		if err != nil || n != 1 {
			t.Fatalf("ParkedThrough: %d %v", n, err)
		}
		if _, err := s.DeadLetters(ctx, DeadLetterQuery{Status: "GONE"}); ErrorCode(err) != BadUserInput {
			t.Fatalf("unknown status: %v", err)
		}
	})
}

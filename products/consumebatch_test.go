package products

import (
	"context"
	"testing"
	"time"
)

// TestConsumeBatch: a batch's parked events come back as dead letters and
// are not recorded, events applied before and repeats within the batch
// are not fresh, the sources' positions advance by the fresh ones, and
// the keys' newest positions are read for Newest (one statement on
// PostgreSQL, several on SQLite: the same answers).
func TestConsumeBatch(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
		ev := func(source string, seq, key int64) *AuditEntry {
			return &AuditEntry{Product: source, Entity: "Thing", Key: key, Sequence: seq, At: at.Add(time.Duration(seq) * time.Second)}
		}
		// Before: a/1 applied (key 1 at sequence 1), a/3 parked.
		if _, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			if _, err := tx.ConsumeAll(ctx, []Consumed{{Source: "a", Sequence: 1, At: at}}); err != nil {
				return err
			}
			if _, err := tx.Newest(ctx, "a", "Thing", 1, 1); err != nil {
				return err
			}
			_, err := tx.Park(ctx, &DeadLetter{Source: "a", Sequence: 3, Entity: "Thing", Key: 3, Topic: "t", Reason: "test",
				Attempts: 1, FirstFailureAt: at, LastFailureAt: at, MessageKey: "{}", Event: "{}"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		batch := []*AuditEntry{ev("a", 1, 1), ev("a", 2, 1), ev("a", 3, 3), ev("b", 7, 1), ev("a", 2, 1), ev("a", 4, 2)}
		var fresh []bool
		var parked map[string]*DeadLetter
		var newest [3]bool
		if _, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			var err error
			if parked, fresh, err = tx.ConsumeBatch(ctx, batch); err != nil {
				return err
			}
			// Key 1 of a was applied at sequence 1: 2 is newer, 0 older.
			if newest[0], err = tx.Newest(ctx, "a", "Thing", 1, 2); err != nil {
				return err
			}
			if newest[1], err = tx.Newest(ctx, "a", "Thing", 1, 0); err != nil {
				return err
			}
			if newest[2], err = tx.Newest(ctx, "b", "Thing", 1, 7); err != nil {
				return err
			}
			return tx.SaveNewest(ctx)
		}); err != nil {
			t.Fatal(err)
		}
		want := []bool{false, true, false, true, false, true}
		for i := range want {
			if fresh[i] != want[i] {
				t.Errorf("fresh %v, want %v", fresh, want)
				break
			}
		}
		if len(parked) != 1 || parked["a/3"] == nil || parked["a/3"].Reason != "test" {
			t.Errorf("parked %v, want a/3", parked)
		}
		if newest != [3]bool{true, false, true} {
			t.Errorf("newest %v, want [true false true]", newest)
		}
		positions, err := s.SourcePositions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(positions) != 2 || positions[0].Source != "a" || positions[0].Sequence != 4 || positions[0].Applied != 3 ||
			!positions[0].At.Equal(at.Add(4*time.Second)) || positions[1].Source != "b" || positions[1].Sequence != 7 || positions[1].Applied != 1 {
			t.Errorf("positions %+v, want a at 4 (3 applied), b at 7 (1 applied)", positions)
		}
		// SaveNewest wrote what Newest advanced: a's key 1 at 2, b's at 7.
		var after [3]bool
		if _, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
			var err error
			if after[0], err = tx.Newest(ctx, "a", "Thing", 1, 1); err != nil {
				return err
			}
			if after[1], err = tx.Newest(ctx, "a", "Thing", 1, 2); err != nil {
				return err
			}
			after[2], err = tx.Newest(ctx, "b", "Thing", 1, 6)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if after != [3]bool{false, true, false} {
			t.Errorf("newest after the batch %v, want [false true false]", after)
		}
		if n, _, err := s.ConsumedThrough(ctx, "a", 10); err != nil || n != 3 {
			t.Errorf("a's changes recorded as consumed: %d (%v), want 3 (1, 2, 4)", n, err)
		}
	})
}

package products

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products/pgtest"
)

// TestConcurrentWritersPositions has many writers append to one product's
// log at once — on PostgreSQL through two stores on the same schema, as two
// gateway instances would — while a reader polls the log the way the relay
// and the hub do (everything after the last position it has seen). The
// reader must never find a position below one it has seen appear later,
// nor a hole: each poll continues exactly after the last position seen.
// At the end the positions are exactly 1..N, N being the entries of the
// committed writes (some writes roll back), each write learnt its own
// positions, and one row's changes, which take turns on its row lock, are
// positioned in the order they were made.
func TestConcurrentWritersPositions(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testConcurrentWriters(t, openTestStore(t, "sqlite:"+filepath.Join(t.TempDir(), "storetest.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.New(t).DSN(testProduct.Name)
		s := openTestStore(t, dsn)
		other, err := Open(context.Background(), testProduct, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Close() })
		testConcurrentWriters(t, s, other)
	})
}

func testConcurrentWriters(t *testing.T, instances ...*Store) {
	{
		s := instances[0]
		ctx := context.Background()
		hot := &widget{Code: "hot-0"}
		if err := addWidget(ctx, s, hot); err != nil {
			t.Fatal(err)
		}

		const writers, writes = 16, 40
		var (
			mu        sync.Mutex
			committed = map[int64]bool{1: true} // positions Write returned (1: the hot widget)
			entries   atomic.Int64
			hotDone   atomic.Int64
		)
		entries.Store(1)
		stop := make(chan struct{})
		readerDone := make(chan error, 1)
		go func() { readerDone <- pollLog(ctx, s, stop) }()

		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range writes {
					st := instances[(w+i)%len(instances)]
					var err error
					var got []AuditEntry
					switch {
					case i%9 == 4: // rolls back after appending its changes
						_, err = st.Write(ctx, func(ctx context.Context, tx *Tx) error {
							w := &widget{Code: fmt.Sprintf("gone-%d-%d", w, i)}
							if _, err := tx.NewInsert().Model(w).Returning("id").Exec(ctx); err != nil {
								return err
							}
							if err := tx.Created(widgetEntity, w.ID, w); err != nil {
								return err
							}
							return errors.New("changed my mind")
						})
						if err == nil {
							t.Error("a failing write succeeded")
						}
						continue
					case i%5 == 2: // the hot row: read, change, under its row lock
						got, err = st.Write(ctx, func(ctx context.Context, tx *Tx) error {
							before, err := GetForUpdate[widget](ctx, tx, widgetEntity, hot.ID)
							if err != nil {
								return err
							}
							n, _ := strconv.Atoi(strings.TrimPrefix(before.Code, "hot-"))
							after := *before
							after.Code = fmt.Sprintf("hot-%d", n+1)
							if _, err := tx.NewUpdate().Model(&after).WherePK().Exec(ctx); err != nil {
								return err
							}
							return tx.Updated(widgetEntity, hot.ID, before, &after)
						})
						if err == nil {
							hotDone.Add(1)
						}
					default: // 1–3 new rows
						got, err = st.Write(ctx, func(ctx context.Context, tx *Tx) error {
							for k := range 1 + (w+i)%3 {
								w := &widget{Code: fmt.Sprintf("w-%d-%d-%d", w, i, k)}
								if _, err := tx.NewInsert().Model(w).Returning("id").Exec(ctx); err != nil {
									return err
								}
								if err := tx.Created(widgetEntity, w.ID, w); err != nil {
									return err
								}
							}
							return nil
						})
					}
					if err != nil {
						t.Error(err)
						return
					}
					entries.Add(int64(len(got)))
					mu.Lock()
					for k, e := range got {
						if e.Sequence <= 0 || committed[e.Sequence] {
							t.Errorf("write got position %d (twice or none)", e.Sequence)
						}
						if k > 0 && e.Sequence != got[k-1].Sequence+1 {
							t.Errorf("one write's positions %d, %d are not consecutive", got[k-1].Sequence, e.Sequence)
						}
						committed[e.Sequence] = true
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(stop)
		if err := <-readerDone; err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}

		n := entries.Load()
		log, err := s.Entries(ctx, 0, 0, int(n)+10)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(log)) != n {
			t.Fatalf("the log holds %d entries, the committed writes made %d", len(log), n)
		}
		var hotCodes []int
		for i, e := range log {
			if e.Sequence != int64(i+1) {
				t.Fatalf("entry %d has position %d: positions are not 1..%d", i, e.Sequence, n)
			}
			if !committed[e.Sequence] {
				t.Errorf("no write was told position %d", e.Sequence)
			}
			if e.Key == hot.ID && e.Op == OpUpdate {
				var after widget
				if err := json.Unmarshal([]byte(*e.After), &after); err != nil {
					t.Fatal(err)
				}
				c, _ := strconv.Atoi(strings.TrimPrefix(after.Code, "hot-"))
				hotCodes = append(hotCodes, c)
			}
		}
		if int64(len(hotCodes)) != hotDone.Load() || !sort.IntsAreSorted(hotCodes) {
			t.Errorf("the hot row's changes in log order: %v (want 1..%d in order)", hotCodes, hotDone.Load())
		}
		latest, counts, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if latest != n || counts[widgetEntity.Name] != n {
			t.Errorf("latest %d, entity count %d; want %d", latest, counts[widgetEntity.Name], n)
		}
		if !s.sqlite {
			pending, err := s.DB.NewSelect().Model((*pendingEntry)(nil)).Count(ctx)
			if err != nil || pending != 0 {
				t.Errorf("%d entries still pending (%v)", pending, err)
			}
		}
		t.Logf("%d writers, %d entries, %d of them changes of one row", writers, n, len(hotCodes))
	}
}

// pollLog reads the log like a relay until stop (and once more after it):
// every poll must continue exactly after the last position seen, and what
// it has seen must never grow below that position.
func pollLog(ctx context.Context, s *Store, stop <-chan struct{}) error {
	var last int64
	polls := 0
	for {
		stopped := false
		select {
		case <-stop:
			stopped = true
		default:
		}
		latest, err := s.Latest(ctx)
		if err != nil {
			return err
		}
		var seqs []int64
		if err := s.DB.NewSelect().Model((*AuditEntry)(nil)).Column("sequence").Where("sequence > ?", last).
			Order("sequence").Scan(ctx, &seqs); err != nil {
			return err
		}
		for _, q := range seqs {
			if q != last+1 {
				return fmt.Errorf("poll %d: after position %d the log continues at %d", polls, last, q)
			}
			last = q
		}
		if last < latest {
			return fmt.Errorf("poll %d: the counter says %d, the log ends at %d", polls, latest, last)
		}
		below, err := s.DB.NewSelect().Model((*AuditEntry)(nil)).Where("sequence <= ?", last).Count(ctx)
		if err != nil {
			return err
		}
		if int64(below) != last {
			return fmt.Errorf("poll %d: %d entries at or below position %d", polls, below, last)
		}
		polls++
		if stopped {
			if polls < 10 {
				return fmt.Errorf("the reader polled only %d times", polls)
			}
			return nil
		}
	}
}

// TestPositionsSetByAnotherInstance checks that a writer learns the
// positions of its entries when another instance's sequencing round moved
// them into the log before its own round ran, and that a relay's round
// positions entries whose writer never waited for them (it died).
func TestPositionsSetByAnotherInstance(t *testing.T) {
	dsn := pgtest.New(t).DSN(testProduct.Name)
	a := openTestStore(t, dsn)
	ctx := context.Background()
	b, err := Open(ctx, testProduct, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := addWidget(ctx, a, &widget{Code: "first"}); err != nil {
		t.Fatal(err)
	}
	floor := a.seq.floor()
	// A commits two entries and "dies" before its round.
	var ids []int64
	err = a.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		entries := []AuditEntry{
			{Product: testProduct.Name, Entity: widgetEntity.Name, Key: 7, Op: OpDelete, Actor: "t", At: time.Now()},
			{Product: testProduct.Name, Entity: widgetEntity.Name, Key: 8, Op: OpDelete, Actor: "t", At: time.Now()},
		}
		ids, err = appendPending(ctx, tx, entries)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.seq.await(ctx, nil, 0); err != nil { // B's round moves them
		t.Fatal(err)
	}
	got, err := a.seq.await(ctx, ids, floor)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 2 || got[1] != 3 {
		t.Errorf("positions %v, want [2 3]", got)
	}
	if latest, err := a.Latest(ctx); err != nil || latest != 3 {
		t.Errorf("latest %d (%v), want 3", latest, err)
	}
}

// TestRelayPositionsEntriesOfADeadWriter checks that entries committed by a
// writer that died before its sequencing round are positioned by a relay
// round once they have been pending for a while, and published by the
// next.
func TestRelayPositionsEntriesOfADeadWriter(t *testing.T) {
	s := openTestStore(t, pgtest.New(t).DSN(testProduct.Name))
	ctx := context.Background()
	if err := addWidget(ctx, s, &widget{Code: "alive"}); err != nil {
		t.Fatal(err)
	}
	err := s.DB.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		_, err := appendPending(ctx, tx, []AuditEntry{
			{Product: testProduct.Name, Entity: widgetEntity.Name, Key: 9, Op: OpDelete, Actor: "t", At: time.Now().Add(-2 * stalePending)},
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var published []int64
	publish := func(_ context.Context, es []AuditEntry) error {
		for _, e := range es {
			published = append(published, e.Sequence)
		}
		return nil
	}
	for range 2 {
		if _, err := s.Outbox(ctx, 100, "c", publish); err != nil {
			t.Fatal(err)
		}
	}
	if len(published) != 2 || published[0] != 1 || published[1] != 2 {
		t.Errorf("published %v, want [1 2]", published)
	}
}

// TestAppendKeepsImagesAndOrder checks that entries appended from arrays
// (PostgreSQL) reach the log as recorded, in the order recorded: images
// with quotes, backslashes, braces, commas and non-ASCII text, a missing
// image (NULL), an empty traceparent.
func TestAppendKeepsImagesAndOrder(t *testing.T) {
	s := openTestStore(t, pgtest.New(t).DSN(testProduct.Name))
	ctx := context.Background()
	images := []map[string]string{
		{"code": `a "quoted" \ back\\slash`},
		{"code": "{braces}, commas, NULL, null"},
		{"code": "ünïcödé ✓ \t tab\nnewline"},
	}
	written, err := s.Write(ctx, func(ctx context.Context, tx *Tx) error {
		for i, img := range images {
			if err := tx.Created(widgetEntity, int64(10+i), img); err != nil {
				return err
			}
		}
		return tx.Deleted(widgetEntity, 99, images[0])
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Entries(ctx, 0, 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || len(written) != 4 {
		t.Fatalf("%d entries in the log, %d written, want 4", len(got), len(written))
	}
	for i, e := range got {
		w := written[i]
		if e.Sequence != int64(i+1) || w.Sequence != e.Sequence || e.Key != w.Key || e.Op != w.Op || e.TraceParent != "" {
			t.Errorf("entry %d: %+v, written %+v", i, e, w)
		}
		if (e.Before == nil) != (w.Before == nil) || (e.After == nil) != (w.After == nil) ||
			(e.Before != nil && *e.Before != *w.Before) || (e.After != nil && *e.After != *w.After) {
			t.Errorf("entry %d images: %v/%v, written %v/%v", i, e.Before, e.After, w.Before, w.After)
		}
	}
	if got[3].Op != OpDelete || got[3].After != nil || got[3].Key != 99 {
		t.Errorf("last entry %+v, want the deletion of 99", got[3])
	}
}

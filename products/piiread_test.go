package products

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestReadRecordsGroupCommit: read records of concurrent requests are
// committed in shared transactions (group commit), each at its own
// position: positions 1…n, none skipped or repeated, each record read back
// at the position RecordReads gave it; a reader that saw position p never
// finds a record committed later below p (positions are taken in commit
// order).
func TestReadRecordsGroupCommit(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		const n = 64
		recs := make([]*PIIRead, n)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		readerDone := make(chan error, 1)
		go func() { // a poller, as the piiReads subscription polls
			var seen int64
			for {
				got, err := s.ReadsAfter(ctx, seen, 1000)
				if err != nil {
					readerDone <- err
					return
				}
				for _, r := range got {
					if r.Sequence != seen+1 {
						readerDone <- fmt.Errorf("after position %d the log continues at %d", seen, r.Sequence)
						return
					}
					seen = r.Sequence
				}
				select {
				case <-stop:
					readerDone <- nil
					return
				default:
				}
			}
		}()
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				recs[i] = &PIIRead{Subject: fmt.Sprint("s", i), RequestID: fmt.Sprint("r", i)}
				if err := s.RecordReads(ctx, recs[i], []EntityRead{{Entity: "Widget", Fields: []string{"code"}, Keys: []int64{int64(i)}}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		close(stop)
		if err := <-readerDone; err != nil {
			t.Fatal(err)
		}
		got, err := s.ReadsAfter(ctx, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("%d records, want %d", len(got), n)
		}
		byRequest := map[string]int64{}
		for i, r := range got {
			if r.Sequence != int64(i+1) {
				t.Fatalf("record %d at position %d", i, r.Sequence)
			}
			byRequest[r.RequestID] = r.Sequence
		}
		for _, r := range recs {
			if byRequest[r.RequestID] != r.Sequence || r.Product != testProduct.Name {
				t.Errorf("request %s: recorded at %d, read back at %d (product %q)", r.RequestID, r.Sequence, byRequest[r.RequestID], r.Product)
			}
		}
		if latest, err := s.LatestRead(ctx); err != nil || latest != n {
			t.Errorf("latest read %d, %v; want %d", latest, err, n)
		}
	})
}

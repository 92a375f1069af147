package products

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/meshgate/meshgate/products/pgtest"
)

// TestUnreachableByCode: connection failures and the server's shutdown
// codes are UNAVAILABLE; constraint violations, cancellations and
// ordinary errors are not.
func TestUnreachableByCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "57P02"}, true},
		{&pgconn.PgError{Code: "57P03"}, true},
		{&pgconn.PgError{Code: "08006"}, true},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{syscall.ECONNRESET, true},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "57014"}, false}, // query_canceled
		{context.Canceled, false},
		{errors.New("boom"), false},
	} {
		if got := Unreachable(c.err); got != c.want {
			t.Errorf("Unreachable(%v) = %v, want %v", c.err, got, c.want)
		}
		if got := ErrorCode(Unavailability(c.err)) == Unavailable; got != c.want {
			t.Errorf("Unavailability(%v) is UNAVAILABLE: %v, want %v", c.err, got, c.want)
		}
	}
}

// TestReadsSurviveBrokenSessions: after every pooled session broke (a
// server restart, here a proxy between the store and the server cutting
// them), reads (raw ones and model reads) succeed at once on new sessions instead of failing one
// request per dead session.
func TestReadsSurviveBrokenSessions(t *testing.T) {
	proxy := pgtest.NewProxy(t)
	s := openTestStore(t, proxy.DSN(pgtest.New(t).DSN(testProduct.Name)))
	ctx := context.Background()
	// reads runs 4 reads at once (each holds a session for a moment, so
	// all of the pool's sessions serve) and a few one after the other.
	reads := func(when string) {
		t.Helper()
		errc := make(chan error, 4)
		for i := range 4 {
			go func() {
				if i%2 == 0 {
					_, err := s.DB.NewRaw("SELECT pg_sleep(0.05)").Exec(ctx)
					errc <- err
					return
				}
				// A model read, which pgScan reads on the session itself.
				var rows []*widget
				errc <- selectRows(ctx, s.DB, s.DB.NewSelect().Model(&rows).Where("pg_sleep(0.05) IS NOT NULL"), &rows)
			}()
		}
		for range 4 {
			if err := <-errc; err != nil {
				t.Fatalf("%s: %v", when, err)
			}
		}
		for range 4 {
			if _, err := s.Latest(ctx); err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if _, err := List[widget](ctx, s.DB, widgetEntity, ListArgs{}); err != nil {
				t.Fatalf("%s: list: %v", when, err)
			}
		}
	}
	reads("before")
	if open := s.DB.Stats().OpenConnections; open < 2 {
		t.Fatalf("%d sessions open, want several", open)
	}
	proxy.AdminShutdown() // what a restart does to idle sessions
	reads("after an admin shutdown")
	proxy.Break() // a network cut
	reads("after the sessions broke")
}

package products

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
)

// Planner statistics. PostgreSQL plans a statement from statistics that
// only ANALYZE refreshes, usually run by autovacuum once a table has
// changed enough. A store that was just loaded in bulk (the demo seed, a
// reacting product catching up on a backlog) has none or stale ones until
// then, and a server with autovacuum off (some CI and benchmark setups
// have it) never gets them: measured on the demo at scale 1, the orders
// page filtered on status and sorted by placed_at ran as a 10 ms
// sequential scan and sort instead of a 0.05 ms index scan, and every
// read of the mesh waited behind it. A store therefore analyzes its own
// tables when they are stale by autovacuum's own rule, soon after its
// writes make them so, whatever the server's settings.
const (
	// AnalyzeEvery is how often Upkeep looks for stale tables.
	AnalyzeEvery = 10 * time.Second
	// analyzeThreshold and analyzeScale are PostgreSQL's defaults of
	// autovacuum_analyze_threshold and autovacuum_analyze_scale_factor:
	// a table is stale once more rows changed since its last ANALYZE
	// than threshold + scale × its rows.
	analyzeThreshold = 50
	analyzeScale     = 0.1
	// analyzeSmall: a table with fewer rows is analyzed once, when it
	// never was, not again whenever it changes: a counter row or an
	// empty queue changes all the time and plans no differently.
	analyzeSmall = 1000
	// bookkeepingScale applies instead of analyzeScale to the
	// framework's own tables (mg_*: the audit log, consumed positions,
	// key positions, …): they are read by their keys whatever the
	// statistics say and grow with every write, so they are analyzed
	// once they have doubled rather than every 10 %. Measured under
	// placeOrder at c16: ANALYZE of an audit log of ~100,000 entries
	// took 390-750 ms, and the 10 % rule had each product's log
	// analyzed every 10 s.
	bookkeepingScale = 1.0
)

// Analyze runs ANALYZE on the store's tables whose planner statistics are
// stale (see above; tables under analyzeSmall rows only when they were
// never analyzed; the framework's own tables once they doubled) and
// returns their names; on SQLite it does nothing.
// Tables another session is analyzing or altering are skipped (their
// statistics are being refreshed anyway) rather than waited for.
func (s *Store) Analyze(ctx context.Context) ([]string, error) {
	if s.sqlite {
		return nil, nil
	}
	var stale []string
	err := s.DB.NewRaw(`SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_stat_user_tables t ON t.relid = c.oid
		WHERE n.nspname = ? AND c.relkind IN ('r', 'p')
		AND COALESCE(t.n_mod_since_analyze, 0) > ? + CASE WHEN c.relname LIKE 'mg\_%' THEN ? ELSE ? END * GREATEST(c.reltuples, 0)
		AND (COALESCE(t.n_live_tup, 0) >= ? OR t.last_analyze IS NULL AND t.last_autoanalyze IS NULL)
		ORDER BY c.relname`, s.schema, analyzeThreshold, bookkeepingScale, analyzeScale, analyzeSmall).Scan(ctx, &stale)
	if err != nil {
		return nil, fmt.Errorf("%s: find tables with stale statistics: %w", s.Product.Name, err)
	}
	for _, table := range stale {
		if _, err := s.DB.ExecContext(ctx, "ANALYZE (SKIP_LOCKED) ?.?", bun.Ident(s.schema), bun.Ident(table)); err != nil {
			return nil, fmt.Errorf("%s: analyze %s: %w", s.Product.Name, table, err)
		}
	}
	return stale, nil
}

// Upkeep keeps a PostgreSQL store's tables in shape until ctx ends; on
// SQLite it returns at once.
//
//   - Planner statistics: it runs Analyze at once (a gateway that just
//     seeded its stores plans from fresh statistics from its first
//     request on) and then every analyzeEvery (0: never; autovacuum's
//     job). A failure is logged and tried again at the next turn, except
//     a missing privilege (the store's role does not own its tables),
//     which is logged once and ends the analyzing: someone else
//     (autovacuum, a DBA) keeps the statistics then.
//   - The pending audit entries' queue: whenever this process's
//     sequencing rounds have moved vacuumAfter entries out of it, it runs
//     VACUUM on it (see vacuumAfter for why the queue cannot wait for
//     autovacuum). A role that does not own the table gets a warning from
//     PostgreSQL and nothing is done.
func (s *Store) Upkeep(ctx context.Context, analyzeEvery time.Duration, log *slog.Logger) {
	if s.sqlite {
		return
	}
	var tick <-chan time.Time
	if analyzeEvery > 0 {
		t := time.NewTicker(analyzeEvery)
		defer t.Stop()
		tick = t.C
		if !s.analyzeTurn(ctx, log) {
			tick = nil
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			if !s.analyzeTurn(ctx, log) {
				tick = nil
			}
		case <-s.seq.vacuum:
			if err := s.VacuumQueue(ctx); err != nil && ctx.Err() == nil {
				log.Warn("pending audit entries: vacuum failed; trying again after the next entries", "product", s.Product.Name, "err", err)
			}
		}
	}
}

// analyzeTurn runs Analyze once and logs what it did; false when the
// store's role may not analyze (no point in trying again).
func (s *Store) analyzeTurn(ctx context.Context, log *slog.Logger) bool {
	analyzed, err := s.Analyze(ctx)
	switch {
	case ctx.Err() != nil:
	case err != nil:
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" {
			log.Warn("planner statistics: the store's role may not analyze its tables; leaving them to autovacuum", "product", s.Product.Name, "err", err)
			return false
		}
		log.Warn("planner statistics: analyze failed; trying again later", "product", s.Product.Name, "err", err)
	case len(analyzed) > 0:
		log.Debug("planner statistics refreshed", "product", s.Product.Name, "tables", analyzed)
	}
	return true
}

// VacuumQueue runs VACUUM on the store's queue of pending audit entries
// (PostgreSQL; nothing on SQLite), skipping it if another session holds a
// conflicting lock (a VACUUM or ANALYZE of it already running).
func (s *Store) VacuumQueue(ctx context.Context) error {
	if s.sqlite {
		return nil
	}
	if _, err := s.DB.ExecContext(ctx, "VACUUM (SKIP_LOCKED, TRUNCATE false) ?.mg_audit_pending", bun.Ident(s.schema)); err != nil {
		return fmt.Errorf("%s: vacuum mg_audit_pending: %w", s.Product.Name, err)
	}
	return nil
}

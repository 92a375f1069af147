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
	// AnalyzeEvery is how often KeepStatistics looks for stale tables.
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
)

// Analyze runs ANALYZE on the store's tables whose planner statistics are
// stale (see above; tables under analyzeSmall rows only when they were
// never analyzed) and returns their names; on SQLite it does nothing.
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
		AND COALESCE(t.n_mod_since_analyze, 0) > ? + ? * GREATEST(c.reltuples, 0)
		AND (COALESCE(t.n_live_tup, 0) >= ? OR t.last_analyze IS NULL AND t.last_autoanalyze IS NULL)
		ORDER BY c.relname`, s.schema, analyzeThreshold, analyzeScale, analyzeSmall).Scan(ctx, &stale)
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

// KeepStatistics runs Analyze at once and then every interval until ctx
// ends; on SQLite it returns at once. A failure is logged and tried again at the next turn,
// except a missing privilege (the store's role does not own its tables),
// which is logged once and ends the loop: someone else (autovacuum, a
// DBA) keeps the statistics then.
func (s *Store) KeepStatistics(ctx context.Context, every time.Duration, log *slog.Logger) {
	if s.sqlite || every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for first := true; ; first = false {
		// The first turn runs at once: a gateway that just seeded its
		// stores plans from fresh statistics from its first request on.
		if !first {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		analyzed, err := s.Analyze(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42501" {
				log.Warn("planner statistics: the store's role may not analyze its tables; leaving them to autovacuum", "product", s.Product.Name, "err", err)
				return
			}
			log.Warn("planner statistics: analyze failed; trying again later", "product", s.Product.Name, "err", err)
		case len(analyzed) > 0:
			log.Debug("planner statistics refreshed", "product", s.Product.Name, "tables", analyzed)
		}
	}
}

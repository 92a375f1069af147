package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func pick(rs []result, f func(result) float64) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = f(r)
	}
	return out
}

// ratio is the median over rounds of a(round)/b(round).
func ratio(a, b []result, f func(result) float64) (float64, bool) {
	if len(a) == 0 || len(a) != len(b) {
		return 0, false
	}
	var rs []float64
	for i := range a {
		if f(b[i]) > 0 {
			rs = append(rs, f(a[i])/f(b[i]))
		}
	}
	if len(rs) == 0 {
		return 0, false
	}
	return median(rs), true
}

func rps(r result) float64 { return r.RPS }
func p99(r result) float64 { return ms(r.P99) }

func fmtRatio(v float64, ok bool) string {
	if !ok {
		return "–"
	}
	if v >= 10 {
		return fmt.Sprintf("%.0f", v)
	}
	if v >= 0.1 {
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func (rep *report) print(stdout io.Writer, runDir string) error {
	var b strings.Builder
	e, o := rep.env, rep.opts
	fmt.Fprintf(&b, "## Side by side (bench/compare), %s\n\n", e.Date)
	fmt.Fprintf(&b, "- machine: %s, %d cores; load average at start %s (shared machine: indicative numbers)\n", e.CPU, e.Cores, e.Load)
	fmt.Fprintf(&b, "- meshgate %s; PostgreSQL %s; PostGraphile %s (amber preset, NODE_ENV=production, pool 10) on Node %s; %s; %s; %s\n",
		e.Commit, e.PG, orQ(e.PGL), orQ(e.Node), e.Wrk, e.Pgbench, e.Go)
	fmt.Fprintf(&b, "- demo scale %g (%d orders, %d customers, %d items); %d interleaved rounds × %v per system and concurrency; medians of rounds and of per-round ratios\n",
		o.scale, scaled(baseOrders, o.scale), scaled(baseCustomers, o.scale), scaled(baseItems, o.scale), o.rounds, o.duration)
	which := strings.Join(o.scenarios, " ")
	if slices.Equal(o.scenarios, allScenarios) {
		which = ""
	}
	fmt.Fprintf(&b, "- reproduce: `go run ./bench/compare -scale %g -duration %v -rounds %d -c %s %s`\n\n", o.scale, o.duration, o.rounds, joinInts(o.conc), which)

	if len(rep.results) > 0 {
		b.WriteString("| scenario | c | system | rps | p50 ms | p99 ms | errors | PG sessions opened / round | PG xacts / request |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, m := range rep.results {
			for _, name := range m.Order {
				rs := m.Rounds[name]
				errs := int64(0)
				for _, r := range rs {
					errs += r.Errors
				}
				sessions, xacts := "–", "–"
				if !strings.Contains(name, "SQLite") {
					sessions = fmt.Sprintf("%.0f", median(pick(rs, func(r result) float64 { return float64(r.Sessions) })))
					xacts = fmt.Sprintf("%.1f", median(pick(rs, func(r result) float64 {
						if r.Requests == 0 {
							return 0
						}
						return float64(r.Xacts) / float64(r.Requests)
					})))
				}
				sys := name
				if rs[0].Clients != m.Conc {
					sys += fmt.Sprintf(" (%d clients)", rs[0].Clients)
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %s | %s | %d | %s | %s |\n", m.Scenario.Name, m.Conc, sys,
					median(pick(rs, rps)), fmtMS(median(pick(rs, func(r result) float64 { return ms(r.P50) }))), fmtMS(median(pick(rs, p99))), errs, sessions, xacts)
			}
		}
		b.WriteString("\n| scenario | c | meshgate ÷ PostGraphile rps | meshgate ÷ PostGraphile p99 | meshgate ÷ pgbench rps | SQLite ÷ PostgreSQL meshgate rps | SQL statements / request |\n|---|---|---|---|---|---|---|\n")
		for _, m := range rep.results {
			mg := m.Rounds["meshgate PG"]
			r1, ok1 := ratio(mg, m.Rounds["PostGraphile"], rps)
			r2, ok2 := ratio(mg, m.Rounds["PostGraphile"], p99)
			r3, ok3 := ratio(mg, m.Rounds["pgbench"], rps)
			r4, ok4 := ratio(m.Rounds["meshgate SQLite"], mg, rps)
			st := "–"
			if n := rep.stmts[m.Scenario.Name]; len(n) > 0 {
				lo, hi := slices.Min(n), slices.Max(n)
				st = fmt.Sprint(lo)
				if hi != lo {
					st = fmt.Sprintf("%d–%d (varies)", lo, hi)
				}
				if n := rep.setups[m.Scenario.Name]; len(n) > 0 && slices.Max(n) > 0 {
					st += fmt.Sprintf(" + %d–%d SET (new sessions)", slices.Min(n), slices.Max(n))
				}
				if m.Scenario.Write {
					st += " (write transaction)"
				}
			}
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s |\n", m.Scenario.Name, m.Conc, fmtRatio(r1, ok1), fmtRatio(r2, ok2), fmtRatio(r3, ok3), fmtRatio(r4, ok4), st)
		}
		b.WriteString("\nrps: good answers (pgbench: transactions) per second, errors left out; p50/p99 from wrk's (pgbench's) per-request latencies. " +
			"PG sessions: pg_stat_database.sessions opened during the round. PG xacts / request: transactions the database counted during the round per request, " +
			"including the background work of the gateways beside it (relays, consumers). SQL statements / request: captured through the protocol proxy for " +
			"sequential requests of a second gateway instance; SET lines are session setup of connections opened during the request. " +
			"Every table is analyzed (ANALYZE) after the consumers settle and before anything is timed: both systems plan from fresh statistics. The nested read filters on status only: PostGraphile's amber preset has no range filters without postgraphile-plugin-connection-filter.\n\n")
	}
	if cu := rep.catchUp; cu != nil {
		fmt.Fprintf(&b, "Cold start on PostgreSQL: seeding took %v; the consumers %s after %v; sales applied %.0f events at %.0f events/s%s.\n",
			rep.seedTook.Round(time.Second), map[bool]string{true: "caught up", false: "had NOT caught up"}[cu.Settled], cu.Took.Round(time.Second), cu.SalesN, cu.SalesRate, cu.rates())
	}
	if cu := rep.sqliteUp; cu != nil {
		fmt.Fprintf(&b, "Cold start on SQLite: the consumers %s after %v; sales applied %.0f events at %.0f events/s%s.\n",
			map[bool]string{true: "caught up", false: "had NOT caught up"}[cu.Settled], cu.Took.Round(time.Second), cu.SalesN, cu.SalesRate, cu.rates())
	}
	for _, c := range []struct {
		store string
		cu    *catchUp
	}{{"PostgreSQL", rep.catchUp}, {"SQLite", rep.sqliteUp}} {
		if c.cu != nil && len(c.cu.Reactions) > 0 {
			b.WriteString(c.cu.reactionTable(c.store))
		}
	}
	if len(rep.equalities) > 0 {
		fmt.Fprintf(&b, "\nChecked before timing, meshgate and PostGraphile answer alike: %s.\n", strings.Join(rep.equalities, "; "))
	}
	if len(rep.goOrder) > 0 {
		b.WriteString("\nIn-process benchmarks (go test -bench … -benchtime 1x ./bench/, peers stopped):\n")
		for _, name := range rep.goOrder {
			fmt.Fprintf(&b, "\n%s — %s:\n\n```\n%s\n```\n", name, goBenches("").get(name), strings.Join(rep.goOut[name], "\n"))
		}
	}
	for _, n := range rep.notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "\nLoad average at the end: %s.\n", strings.Join(strings.Fields(string(l))[:3], " "))
	}
	fmt.Fprintf(&b, "\nLogs, captured SQL, pgbench scripts, wrk scripts, answers and profiles: %s\n", runDir)
	for _, p := range rep.profiles {
		fmt.Fprintf(&b, "\n```\n%s\n```\n", strings.TrimSpace(p))
	}
	out := b.String()
	fmt.Fprint(stdout, out)
	os.WriteFile(filepath.Join(runDir, "report.md"), []byte(out), 0o644)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(out), 0o644)
	}
	return nil
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func joinInts(xs []int) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprint(x))
	}
	return strings.Join(s, ",")
}

// rates lists every consumer's rate while it had lag, if measured.
func (cu *catchUp) rates() string {
	var ps []string
	for p := range cu.Rates {
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return ""
	}
	slices.Sort(ps)
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s %.0f/s", p, cu.Rates[p]))
	}
	return " (source positions applied while behind: " + strings.Join(parts, ", ") + ")"
}

// catchUpTarget is issue 12's target for every reaction catching up, in
// events applied per second on PostgreSQL.
const catchUpTarget = 5000

// reactionTable is the markdown table of what each reacting product
// applied while catching up, with the ratios to catchUpTarget.
func (cu *catchUp) reactionTable(store string) string {
	var ps []string
	for p := range cu.Reactions {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	var b strings.Builder
	fmt.Fprintf(&b, "\nReactions catching up on %s (target ≥ %d events/s each; events: source changes applied, meshgate_consumer_events_applied_total; "+
		"behind: until the last poll, every %v, that saw its lag > 0; applying: meshgate_consumer_apply_seconds_total):\n\n", store, catchUpTarget, settlePoll)
	b.WriteString("| reaction | events applied | batches | behind s | events/s while behind | ÷ target | applying s | events/s applying | ÷ target |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range ps {
		r := cu.Reactions[p]
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.1f | %.0f | %.2f | %.1f | %.0f | %.2f |\n", p, r.Events, r.Batches, r.Behind.Seconds(),
			r.Rate(), r.Rate()/catchUpTarget, r.Busy, r.ApplyRate(), r.ApplyRate()/catchUpTarget)
	}
	return b.String()
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// goBench is an in-process Go benchmark of bench/ that a scenario runs
// (go test -bench … -benchtime 1x), once per environment.
type goBench struct {
	pattern string
	envs    [][]string
	what    string
}

type goBenchSet map[string]goBench

func (s goBenchSet) get(name string) string { return s[name].what }

func goBenches(postgres string) goBenchSet {
	return goBenchSet{
		"encode": {"^BenchmarkEncode$", [][]string{nil},
			"10,000 rows × 8 fields: meshgate's executor on rows in memory vs encoding/json of the same structs"},
		"kafka": {"^BenchmarkCommitToKafka$", [][]string{{"MESHGATE_TEST_POSTGRES=" + postgres}},
			"commit → Kafka ack and → consumer at 1,000 mutations/s, SQLite and PostgreSQL, embedded broker"},
		"targets": {"^(BenchmarkCommitToKafka|BenchmarkSubscriberLatency|BenchmarkCatchUp)$", [][]string{{"MESHGATE_TEST_POSTGRES=" + postgres}},
			"issue 12's targets on PostgreSQL, each line 'issue 12 target …' with its ratio: A commit → Kafka ack p99 ≤ 20 ms at 1,000 mutations/s " +
				"(one and two instances); B commit → subscriber p99 ≤ 50 ms, 1,000 websocket subscribers, 200 orders/s (filtered to 1 % each, and all of them); " +
				"C every reaction ≥ 5,000 events/s catching up alone on a backlog"},
		"fanout": {"^BenchmarkFanout$", [][]string{
			{"MESHGATE_FANOUT_SUBSCRIBERS=1000", "MESHGATE_FANOUT_RATE=200"},
			{"MESHGATE_FANOUT_SUBSCRIBERS=10000"},
		}, "commit → subscriber with 1,000 subscribers at 200 mutations/s; memory per idle subscription with 10,000"},
	}
}

// runGoBench runs b from the repository root and returns the lines the
// benchmark printed (its summaries and the benchmark result lines).
func runGoBench(ctx context.Context, root string, b goBench) ([]string, error) {
	var out []string
	for _, env := range b.envs {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "XXX", "-bench", b.pattern, "-benchtime", "1x", "-timeout", "30m", "./bench/")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		raw, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return out, fmt.Errorf("go test -bench %s (%s): %w\n%s", b.pattern, strings.Join(env, " "), err, raw)
		}
		for _, l := range strings.Split(string(raw), "\n") {
			switch {
			case l == "", l == "PASS", strings.HasPrefix(l, "goos:"), strings.HasPrefix(l, "goarch:"), strings.HasPrefix(l, "pkg:"),
				strings.HasPrefix(l, "cpu:"), strings.HasPrefix(l, "ok "):
				continue
			}
			if len(env) > 0 && strings.HasPrefix(l, "Benchmark") {
				l += "   [" + strings.Join(env, " ") + "]"
			}
			out = append(out, strings.TrimRight(l, " \t"))
		}
	}
	return out, nil
}

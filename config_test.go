package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

// checkConfig runs "meshgate config check" as the binary does.
func checkConfig(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{"config", "check"}, args...), func(k string) string { return env[k] }, &out, io.Discard)
	return out.String(), err
}

// TestConfigCheckPassesTheExample: the annotated example in the repository
// is a configuration the check passes (with the one secret it leaves to the
// environment), and the summary says what it configures.
func TestConfigCheckPassesTheExample(t *testing.T) {
	out, err := checkConfig(t, map[string]string{"MESHGATE_KAFKA_SASL_PASSWORD": "from-the-secret-store"}, "--config", "meshgate.example.yaml")
	if err != nil {
		t.Fatalf("config check of meshgate.example.yaml: %v", err)
	}
	for _, want := range []string{"configuration OK (meshgate.example.yaml)", "0.0.0.0:8080", "2 API keys", "JWTs from https://login.example.com/realms/data",
		"row policies    1", "SASL SCRAM-SHA-512", "sales         postgres://meshgate@analytics-db.internal:5432/analytics", "within 25s"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	// The example leaves the password to the environment, and says so.
	_, err = checkConfig(t, nil, "--config", "meshgate.example.yaml")
	var ue usageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "MESHGATE_KAFKA_SASL_PASSWORD") {
		t.Fatalf("without the SASL password: %v", err)
	}
	// Every key of the example is a setting of the flag set, and the
	// important ones are there.
	b, err := os.ReadFile("meshgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"addr", "postgres", "store", "kafka-brokers", "topic-partitions", "jwt-jwks-url", "api-key", "policies",
		"rate-limit", "max-cost", "query-timeout", "shutdown-timeout", "log-format"} {
		if !regexp.MustCompile(`(?m)^` + key + `:`).Match(b) {
			t.Errorf("the example does not set %s", key)
		}
	}
}

// TestConfigCheckListsEveryProblem: mistakes in the file, the environment
// and the flags are all reported at once, each naming the setting where it
// was given and what to do; the status is 2 (usageError); nothing starts.
func TestConfigCheckListsEveryProblem(t *testing.T) {
	file := t.TempDir() + "/bad.yaml"
	os.WriteFile(file, []byte(`adr: 0.0.0.0:8080
log-level: loud
max-depth: -3
store:
  - orders=mysql://db/orders
policies:
  - {role: "sales-de", entity: "Nope", where: {}}
jwt-jwks-url: https://login.example.com/certs
`), 0o644)
	env := map[string]string{"MESHGATE_TOPIC_PARTITIONS": "0", "MESHGATE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}
	_, err := checkConfig(t, env, "--config", file, "--addr", "0.0.0.0:8080", "--postgres", "postgres://u@db:5432/mesh?pool_max_conns=1")
	var ue usageError
	if !errors.As(err, &ue) {
		t.Fatalf("want a usage error (exit status 2), got %v", err)
	}
	msg := err.Error()
	wants := []string{
		`unknown setting "adr"; settings are named like the flags (did you mean "addr"?)`,
		`log-level (config file ` + file + `) must be debug, info, warn or error, got "loud"`,
		`max-depth (config file ` + file + `) must not be negative`,
		`store (config file ` + file + `): orders store: unsupported DSN "mysql://db/orders"; use "sqlite:<file>"`,
		`--postgres: customers store: bad DSN postgres://u@db:5432/mesh?pool_max_conns=1: pool_max_conns must be a whole number of at least 2`,
		`MESHGATE_TOPIC_PARTITIONS must be at least 1, got 0`,
		`MESHGATE_KAFKA_SASL_MECHANISM SCRAM-SHA-256 needs --kafka-sasl-user and --kafka-sasl-password`,
		`authentication: JWTs need the expected issuer and audience (jwt-issuer, jwt-audience)`,
		`policies (config file ` + file + `): policy 1 (role "sales-de", entity "Nope"): unknown entity "Nope"`,
	}
	for _, want := range wants {
		if !strings.Contains(msg, want) {
			t.Errorf("the report lacks %q:\n%s", want, msg)
		}
	}
	if !strings.HasPrefix(msg, "13 problems in the configuration:") {
		t.Errorf("want every problem counted (one per product for the shared --postgres DSN):\n%s", msg)
	}

	// Dev mode on a public address is refused, naming the setting.
	_, err = checkConfig(t, map[string]string{"MESHGATE_ADDR": "0.0.0.0:8080"})
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "refusing to serve 0.0.0.0:8080 (MESHGATE_ADDR) without authentication") {
		t.Errorf("dev mode on 0.0.0.0: %v", err)
	}
	// A bad flag stops the flag parser: reported alone, still status 2.
	if _, err := checkConfig(t, nil, "--max-dpth", "3"); !errors.As(err, &ue) {
		t.Errorf("unknown flag: %v", err)
	}
	if err := run(context.Background(), []string{"config", "lint"}, func(string) string { return "" }, io.Discard, io.Discard); !errors.As(err, &ue) {
		t.Errorf("config lint: %v", err)
	}
}

// TestServerRefusesWhatTheCheckRefuses: the server runs the same checks at
// start (one code path), so a configuration the check refuses never
// starts either.
func TestServerRefusesWhatTheCheckRefuses(t *testing.T) {
	var ue usageError
	err := run(context.Background(), []string{"--data-dir", t.TempDir(), "--log-level", "loud", "--max-groups", "-1"}, func(string) string { return "" }, io.Discard, io.Discard)
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "2 problems") || !strings.Contains(err.Error(), "--log-level") || !strings.Contains(err.Error(), "--max-groups") {
		t.Fatalf("want both problems reported before anything starts: %v", err)
	}
}

// TestConfigCheckConnectsNowhere: the check neither reads the JWKS URL nor
// opens the stores it is given.
func TestConfigCheckConnectsNowhere(t *testing.T) {
	var reads atomic.Int64
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		w.Write([]byte(`{"keys":[]}`))
	}))
	defer jwks.Close()
	dir := t.TempDir()
	out, err := checkConfig(t, nil, "--jwt-jwks-url", jwks.URL, "--jwt-issuer", "https://issuer", "--jwt-audience", "meshgate",
		"--addr", "0.0.0.0:8080", "--data-dir", dir+"/data", "--store", "sales=postgres://meshgate@127.0.0.1:1/mesh")
	if err != nil {
		t.Fatalf("config check: %v\n%s", err, out)
	}
	if n := reads.Load(); n != 0 {
		t.Errorf("config check read the JWKS URL %d times", n)
	}
	if _, err := os.Stat(dir + "/data"); !os.IsNotExist(err) {
		t.Errorf("config check created the data directory (%v): it opened a store", err)
	}
}

func TestHelpShowsConfigCheck(t *testing.T) {
	var out bytes.Buffer
	run(context.Background(), []string{"--help"}, func(string) string { return "" }, io.Discard, &out)
	if !strings.Contains(out.String(), "meshgate config check [--config file]") {
		t.Fatalf("--help does not show config check:\n%s", out.String())
	}
}

// TestREADMEConfigurationTable keeps the README's configuration table in
// step with the flag set: every flag of the table exists with the default
// it shows, and every flag of the gateway is in the table (by name, or by a
// pattern such as --max-*).
func TestREADMEConfigurationTable(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n| flag | default | what |\n")
	if start < 0 {
		t.Fatal("README: no configuration table (| flag | default | what |)")
	}
	var rows []string
	for _, line := range strings.Split(readme[start+1:], "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		rows = append(rows, line)
	}
	fs, _ := newFlagSet(&config{}, io.Discard)
	flagName := regexp.MustCompile("`(--[a-z0-9*-]+)")
	backticked := regexp.MustCompile("`([^`]*)`")
	covered := map[string]bool{"config": true} // --config is the file itself, described above the table
	for _, row := range rows {
		cols := strings.Split(strings.Trim(row, "|"), " | ")
		if len(cols) < 3 {
			t.Errorf("README table row %q: want | flag | default | what |", row)
			continue
		}
		var names []string
		for _, m := range flagName.FindAllStringSubmatch(cols[0], -1) {
			name := strings.TrimPrefix(m[1], "--")
			if strings.Contains(name, "*") {
				matched := false
				fs.VisitAll(func(f *flag.Flag) {
					if ok, _ := path.Match(name, f.Name); ok {
						covered[f.Name], matched = true, true
					}
				})
				if !matched {
					t.Errorf("README table: %s matches no flag", m[1])
				}
				continue
			}
			if fs.Lookup(name) == nil {
				t.Errorf("README table: %s is not a flag", m[1])
				continue
			}
			covered[name] = true
			names = append(names, name)
		}
		def := strings.TrimSpace(cols[1])
		var defaults []string
		for _, m := range backticked.FindAllStringSubmatch(def, -1) {
			defaults = append(defaults, m[1])
		}
		switch {
		case def == "—":
			for _, n := range names {
				if d := fs.Lookup(n).DefValue; d != "" && d != "false" {
					t.Errorf("README table: --%s shows no default, the flag's is %q", n, d)
				}
			}
		case len(defaults) == len(names) && strings.HasPrefix(def, "`"):
			for i, n := range names {
				if d := fs.Lookup(n).DefValue; d != defaults[i] {
					t.Errorf("README table: --%s shows default %q, the flag's is %q", n, defaults[i], d)
				}
			}
		case strings.HasPrefix(def, "`"):
			t.Errorf("README table row %q: %d defaults for %d flags", row, len(defaults), len(names))
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !covered[f.Name] {
			t.Errorf("README configuration table lacks --%s (default %q: %s)", f.Name, f.DefValue, f.Usage)
		}
	})
}

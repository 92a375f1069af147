package main

// The security edge of the whole gateway, started through run(): dev mode
// and the refusal to start, websocket authentication and expiry, the
// graphql-transport-ws close codes, websocket limits and origin checks, and
// the authenticated subject in change events on Kafka.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"

	"github.com/meshgate/meshgate/web/auth"
)

const (
	edgeSecret   = "an-hs256-secret-of-at-least-32-bytes!!"
	edgeIssuer   = "https://idp.test/"
	edgeAudience = "meshgate"
)

// hsToken signs an HS256 JWT for sub that expires at exp.
func hsToken(sub string, exp time.Time) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	in := enc(map[string]any{"alg": "HS256", "typ": "JWT"}) + "." +
		enc(map[string]any{"sub": sub, "iss": edgeIssuer, "aud": edgeAudience, "exp": exp.Unix(), "iat": time.Now().Unix(), "roles": []string{"customers:write"}})
	mac := hmac.New(sha256.New, []byte(edgeSecret))
	mac.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func authArgs(hash string) []string {
	return []string{"--jwt-hs256-secret", edgeSecret, "--jwt-issuer", edgeIssuer, "--jwt-audience", edgeAudience,
		"--jwt-leeway", "0s", "--api-key", "etl=" + hash + "=customers:write"}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.0.0.2:0": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST:1": true,
		"0.0.0.0:8080": false, ":8080": false, "[::]:8080": false, "10.0.0.1:8080": false, "example.org:80": false, "nonsense": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestRefusesToServeOthersWithoutAuth(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		var out bytes.Buffer
		err := run(context.Background(), []string{"--addr", addr, "--data-dir", t.TempDir()}, func(string) string { return "" }, &out, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Fatalf("--addr %s without auth: %v, want a usage error (exit 2)", addr, err)
		}
		for _, hint := range []string{"--api-key", "meshgate apikey new", "--jwt-jwks-url", "--jwt-issuer", "MESHGATE_", "--config", "127.0.0.1"} {
			if !strings.Contains(err.Error(), hint) {
				t.Errorf("the refusal does not mention %s:\n%v", hint, err)
			}
		}
		if out.Len() > 0 {
			t.Errorf("it printed a banner: %s", out.String())
		}
	}
	// Bad auth settings are usage errors too.
	for _, args := range [][]string{
		{"--api-key", "etl=mgk_thekeyitself"},
		{"--jwt-hs256-secret", "short", "--jwt-issuer", "i", "--jwt-audience", "a"},
		{"--jwt-hs256-secret", edgeSecret}, // no issuer, no audience
		{"--jwt-jwks-file", "/nonexistent/jwks.json", "--jwt-issuer", "i", "--jwt-audience", "a"},
	} {
		err := run(context.Background(), append(args, "--data-dir", t.TempDir(), "--addr", "127.0.0.1:0"), func(string) string { return "" }, io.Discard, io.Discard)
		var ue usageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestDevModeAndAuthMode(t *testing.T) {
	t.Run("dev", func(t *testing.T) {
		g := startGateway(t)
		if !strings.Contains(g.banner, "DEV MODE") {
			t.Errorf("the banner does not say dev mode:\n%s", g.banner)
		}
		if status, h := getJSON(t, g.base+"/healthz"); status != 200 || h["mode"] != "dev" || h["status"] != "ok" {
			t.Errorf("/healthz: %d %v", status, h)
		}
		// Every caller is the dev admin: its changes are audited as "dev".
		data := g.gql(t, `mutation { createCustomer(input: {name: "Dev", email: "dev@example.org", country: "SE", segment: CONSUMER}) { history { nodes { actor } } } }`, nil).must(t)
		if got := fmt.Sprint(data["createCustomer"]); got != "map[history:map[nodes:[map[actor:dev]]]]" {
			t.Errorf("dev mutation: %s", got)
		}
	})
	t.Run("dev mode has no rate limit unless asked", func(t *testing.T) {
		g := startGateway(t, "--rate-limit", "1", "--rate-burst", "2")
		codes := ""
		for range 3 {
			status, _ := getJSON(t, g.base+"/graphql?query=%7B__typename%7D")
			codes += fmt.Sprint(status, " ")
		}
		if codes != "200 200 429 " {
			t.Errorf("with --rate-limit 1 --rate-burst 2: %s", codes)
		}
		// Without the flag, TestNoLeaksOverConnectCycles opens 2,000
		// websockets from one IP as fast as it can.
	})
	t.Run("auth", func(t *testing.T) {
		_, hash := auth.NewKey()
		g := startGateway(t, authArgs(hash)...)
		if strings.Contains(g.banner, "DEV MODE") || !strings.Contains(g.banner, "authentication required (1 API keys, HS256 JWTs") {
			t.Errorf("banner:\n%s", g.banner)
		}
		if status, h := getJSON(t, g.base+"/healthz"); status != 200 || h["mode"] != "auth" {
			t.Errorf("/healthz: %d %v", status, h)
		}
		status, body := getJSON(t, g.base+"/graphql?query=%7B__typename%7D")
		if status != 401 || !strings.Contains(fmt.Sprint(body), "UNAUTHENTICATED") {
			t.Errorf("anonymous query: %d %v", status, body)
		}
	})
	t.Run("config file", func(t *testing.T) {
		key, hash := auth.NewKey()
		file := t.TempDir() + "/meshgate.yaml"
		yaml := fmt.Sprintf("jwt-hs256-secret: %q\njwt-issuer: %s\njwt-audience: %s\napi-key:\n  - {name: etl, hash: %q, roles: [\"customers:write\"]}\n  - name: bi\n    hash: %q\n    roles:\n      - \"orders:read\"\n",
			edgeSecret, edgeIssuer, edgeAudience, hash, auth.HashKey("other"))
		if err := writeFile(file, yaml); err != nil {
			t.Fatal(err)
		}
		c, err := parseConfig([]string{"--config", file}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		ac := c.auth()
		if len(ac.APIKeys) != 2 || ac.APIKeys[0].Name != "etl" || ac.APIKeys[1].Roles[0] != "orders:read" || ac.HS256Secret != edgeSecret || ac.Issuer != edgeIssuer {
			t.Fatalf("auth config from YAML: %+v", ac)
		}
		a, err := auth.New(t.Context(), ac, nil)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := a.Authenticate(t.Context(), key); err != nil || id.Subject != "apikey:etl" {
			t.Errorf("key from the YAML file: %+v %v", id, err)
		}
	})
}

func TestAPIKeyCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"apikey", "new", "--name", "etl", "--roles", "orders:read,customers:read"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var key, flagLine string
	for line := range strings.SplitSeq(out.String(), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, auth.KeyPrefix) {
			key = line
		}
		if v, ok := strings.CutPrefix(line, "--api-key "); ok {
			flagLine = strings.Trim(v, "'")
		}
	}
	if key == "" || flagLine == "" {
		t.Fatalf("output:\n%s", out.String())
	}
	if strings.Contains(flagLine, key) {
		t.Fatal("the config line holds the key itself")
	}
	keys, err := auth.ParseAPIKeys(flagLine)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(t.Context(), auth.Config{APIKeys: keys}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.Authenticate(t.Context(), key)
	if err != nil || id.Subject != "apikey:etl" || strings.Join(id.Roles, ",") != "orders:read,customers:read" {
		t.Errorf("the printed key and line do not match: %+v %v", id, err)
	}
	if err := run(context.Background(), []string{"apikey"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Error("apikey without new accepted")
	}
}

// ws is a raw websocket client for protocol tests.
type ws struct {
	t *testing.T
	c *websocket.Conn
}

func dialRaw(t *testing.T, g *gateway, proto string, header http.Header) (*ws, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	if proto != "" {
		d.Subprotocols = []string{proto}
	}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(g.base, "http")+"/graphql", header)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { c.Close() })
	return &ws{t: t, c: c}, resp, nil
}

func mustDial(t *testing.T, g *gateway, proto string) *ws {
	t.Helper()
	w, _, err := dialRaw(t, g, proto, nil)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *ws) send(v any) {
	w.t.Helper()
	if err := w.c.WriteJSON(v); err != nil {
		w.t.Fatal(err)
	}
}

// read returns the next message other than keep-alives, or the close
// code when the server closed the connection (code 0 if it did not send one).
func (w *ws) read() (m wsMessage, closeCode int, reason string) {
	w.t.Helper()
	w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if err := w.c.ReadJSON(&m); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return m, ce.Code, ce.Text
			}
			w.t.Fatalf("read: %v", err)
		}
		if m.Type != "ka" && m.Type != "pong" {
			return m, 0, ""
		}
	}
}

// closed reads until the server closes and checks its code.
func (w *ws) closed(code int, reason string) {
	w.t.Helper()
	for {
		_, c, r := w.read()
		if c == 0 {
			continue // messages sent before the close
		}
		if c != code || !strings.Contains(r, reason) {
			w.t.Fatalf("closed with %d %q, want %d %q", c, r, code, reason)
		}
		return
	}
}

func (w *ws) init(payload any) {
	w.t.Helper()
	w.send(map[string]any{"type": "connection_init", "payload": payload})
	if m, c, r := w.read(); m.Type != "connection_ack" {
		w.t.Fatalf("connection_init: got %s (close %d %q)", m.Type, c, r)
	}
}

func subscribeType(proto string) string {
	if proto == "graphql-ws" {
		return "start"
	}
	return "subscribe"
}

const changesSub = `subscription { changes(products: ["customers"]) { key } }`

func TestWebsocketAuthentication(t *testing.T) {
	key, hash := auth.NewKey()
	g := startGateway(t, authArgs(hash)...)
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			for name, payload := range map[string]any{
				"Authorization":         map[string]any{"Authorization": "Bearer " + key},
				"authorization":         map[string]any{"authorization": "Bearer " + key},
				"token":                 map[string]any{"token": key},
				"headers.Authorization": map[string]any{"headers": map[string]any{"Authorization": "Bearer " + key}},
				"JWT":                   map[string]any{"Authorization": "Bearer " + hsToken("alice", time.Now().Add(time.Hour))},
			} {
				t.Run("accepted/"+name, func(t *testing.T) {
					w := mustDial(t, g, proto)
					w.init(payload)
					w.send(map[string]any{"id": "1", "type": subscribeType(proto), "payload": map[string]any{"query": `{ mesh { products } }`}})
					if m, c, _ := w.read(); (m.Type != "next" && m.Type != "data") || c != 0 {
						t.Fatalf("query over the socket: %s %s (close %d)", m.Type, m.Payload, c)
					}
				})
			}
			for name, payload := range map[string]any{
				"no payload":    nil,
				"empty payload": map[string]any{},
				"unknown key":   map[string]any{"token": "mgk_unknown"},
				"expired JWT":   map[string]any{"Authorization": "Bearer " + hsToken("alice", time.Now().Add(-time.Minute))},
				"not bearer":    map[string]any{"Authorization": "Basic YWxpY2U6c2VjcmV0"},
			} {
				t.Run("refused/"+name, func(t *testing.T) {
					w := mustDial(t, g, proto)
					w.send(map[string]any{"type": "connection_init", "payload": payload})
					m, c, reason := w.read()
					if proto == "graphql-ws" {
						if m.Type != "connection_error" {
							t.Fatalf("legacy protocol: %s before the close, want connection_error", m.Type)
						}
						_, c, reason = w.read()
					}
					if c != 4403 || !strings.HasPrefix(reason, "Forbidden") {
						t.Fatalf("closed with %d %q, want 4403 Forbidden", c, reason)
					}
				})
			}
			t.Run("token in the upgrade request", func(t *testing.T) {
				w, _, err := dialRaw(t, g, proto, http.Header{"Authorization": {"Bearer " + key}})
				if err != nil {
					t.Fatal(err)
				}
				w.init(map[string]any{})
				_, resp, err := dialRaw(t, g, proto, http.Header{"Authorization": {"Bearer mgk_wrong"}})
				if err == nil || resp == nil || resp.StatusCode != 401 {
					t.Fatalf("a bad header was not refused at the upgrade: %v %v", err, resp)
				}
			})
			t.Run("closed when the token expires", func(t *testing.T) {
				w := mustDial(t, g, proto)
				w.init(map[string]any{"Authorization": "Bearer " + hsToken("alice", time.Now().Add(1500*time.Millisecond))})
				w.send(map[string]any{"id": "s", "type": subscribeType(proto), "payload": map[string]any{"query": changesSub}})
				w.closed(4403, "token expired")
			})
		})
	}
}

func TestWebsocketProtocolAndLimits(t *testing.T) {
	g := startGateway(t, "--max-subscriptions", "3", "--ws-message-rate", "20", "--ws-max-message-bytes", "4096",
		"--ws-init-timeout", "300ms", "--cors-origins", "https://dashboards.example")
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		sub := subscribeType(proto)
		t.Run(proto, func(t *testing.T) {
			cases := []struct {
				name   string
				init   bool
				frames func(w *ws)
				code   int
				reason string
			}{
				{"binary frame", true, func(w *ws) { w.c.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"ping"}`)) }, 4400, "binary"},
				{"invalid JSON", true, func(w *ws) { w.c.WriteMessage(websocket.TextMessage, []byte(`{"type":`)) }, 4400, "Invalid message"},
				{"unknown type", true, func(w *ws) { w.send(map[string]any{"type": "launch_missiles"}) }, 4400, "unknown type"},
				{"server message type", true, func(w *ws) { w.send(map[string]any{"type": "next", "id": "1"}) }, 4400, "unknown type"},
				{"subscribe without id", true, func(w *ws) {
					w.send(map[string]any{"type": sub, "payload": map[string]any{"query": changesSub}})
				}, 4400, "needs an id"},
				{"subscribe before init", false, func(w *ws) {
					w.send(map[string]any{"id": "1", "type": sub, "payload": map[string]any{"query": changesSub}})
				}, 4401, "Unauthorized"},
				{"second init", true, func(w *ws) { w.send(map[string]any{"type": "connection_init"}) }, 4429, "Too many initialisation requests"},
				{"duplicate id", true, func(w *ws) {
					w.send(map[string]any{"id": "dup", "type": sub, "payload": map[string]any{"query": changesSub}})
					w.send(map[string]any{"id": "dup", "type": sub, "payload": map[string]any{"query": changesSub}})
				}, 4409, "Subscriber for dup already exists"},
				{"no init in time", false, func(w *ws) {}, 4408, "Connection initialisation timeout"},
				{"init payload not an object", false, func(w *ws) {
					w.send(map[string]any{"type": "connection_init", "payload": []any{"Authorization", "Bearer x"}})
				}, 4400, "payload must be an object"},
				{"message too big", true, func(w *ws) {
					w.send(map[string]any{"id": "big", "type": sub, "payload": map[string]any{"query": changesSub + strings.Repeat(" ", 5000)}})
				}, 1009, ""},
				{"flood", true, func(w *ws) {
					stop := []byte(`{"type":"complete","id":"x"}`)
					if proto == "graphql-ws" {
						stop = []byte(`{"type":"stop","id":"x"}`)
					}
					for range 200 {
						if w.c.WriteMessage(websocket.TextMessage, stop) != nil {
							return
						}
					}
				}, 1008, "too many messages"},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					w := mustDial(t, g, proto)
					if c.init {
						w.init(map[string]any{})
					}
					c.frames(w)
					w.closed(c.code, c.reason)
				})
			}
			t.Run("subscriptions per connection", func(t *testing.T) {
				w := mustDial(t, g, proto)
				w.init(map[string]any{})
				for i := range 3 {
					w.send(map[string]any{"id": fmt.Sprint(i), "type": sub, "payload": map[string]any{"query": changesSub}})
				}
				w.send(map[string]any{"id": "3", "type": sub, "payload": map[string]any{"query": changesSub}})
				m, c, _ := w.read()
				var errs []gqlError
				json.Unmarshal(m.Payload, &errs)
				if c != 0 || m.Type != "error" || m.ID != "3" || len(errs) != 1 || errs[0].Extensions["code"] != "LIMIT_EXCEEDED" ||
					errs[0].Extensions["limit"] != "subscriptionsPerConnection" || errs[0].Extensions["value"] != 3.0 {
					t.Fatalf("4th subscription: %s %s %s (close %d)", m.Type, m.ID, m.Payload, c)
				}
				// Ending one makes room for another on the same connection.
				stop := "complete"
				if proto == "graphql-ws" {
					stop = "stop"
				}
				w.send(map[string]any{"id": "0", "type": stop})
				w.send(map[string]any{"id": "4", "type": sub, "payload": map[string]any{"query": `subscription { changes(products: ["orders"]) { key } }`}})
				// A subscription without since sees changes committed after it
				// went live, which the client cannot observe: change the
				// customer until an event arrives.
				done := make(chan struct{})
				var wg sync.WaitGroup
				defer func() { close(done); wg.Wait() }()
				wg.Add(1)
				go func() {
					defer wg.Done()
					tick := time.NewTicker(50 * time.Millisecond)
					defer tick.Stop()
					for {
						g.gql(t, `mutation { updateCustomer(id: 1, input: {name: "Limit"}) { id } }`, nil)
						select {
						case <-done:
							return
						case <-tick.C:
						}
					}
				}()
				for {
					m, c, _ := w.read()
					if c != 0 || m.Type == "error" {
						t.Fatalf("after a stop: %s %s (close %d)", m.Type, m.Payload, c)
					}
					if m.ID == "1" || m.ID == "2" {
						break // the others still deliver; "4" was accepted (no error)
					}
				}
			})
		})
	}
	t.Run("cross-site websocket hijacking", func(t *testing.T) {
		_, resp, err := dialRaw(t, g, "graphql-transport-ws", http.Header{"Origin": {"https://evil.example"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("a socket from another site was accepted: %v %v", err, resp)
		}
		w, _, err := dialRaw(t, g, "graphql-transport-ws", http.Header{"Origin": {"https://dashboards.example"}})
		if err != nil {
			t.Fatalf("an allowed origin (--cors-origins) was refused: %v", err)
		}
		w.init(map[string]any{})
		if w2, _, err := dialRaw(t, g, "graphql-transport-ws", http.Header{"Origin": {g.base}}); err != nil {
			t.Fatalf("the gateway's own origin was refused: %v", err)
		} else {
			w2.init(nil)
		}
	})
}

// TestKafkaEventCarriesTheSubject: the change event of a mutation made
// with an API key names the key's subject as its actor, on Kafka itself.
func TestKafkaEventCarriesTheSubject(t *testing.T) {
	key, hash := auth.NewKey()
	g := startGateway(t, authArgs(hash)...)
	jwtTok := hsToken("carol@example.org", time.Now().Add(time.Hour))
	want := map[string]string{}
	for tok, actor := range map[string]string{key: "apikey:etl", jwtTok: "carol@example.org"} {
		body, _ := json.Marshal(map[string]any{"query": `mutation($e: String!) { createCustomer(input: {name: "Kafka", email: $e, country: "SE", segment: CONSUMER}) { id } }`,
			"variables": map[string]any{"e": strings.NewReplacer(":", ".", "@", ".").Replace(actor) + "@example.org"}})
		req, _ := http.NewRequest(http.MethodPost, g.base+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var r gqlResponse
		json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		id := fmt.Sprint(r.must(t)["createCustomer"].(map[string]any)["id"])
		want[`{"id":`+id+`}`] = actor
	}
	consumer, err := sarama.NewConsumer([]string{g.kafka}, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	const topic = "meshgate.customers.customers"
	got := map[string]string{}
	eventually(t, 30*time.Second, "both change events on Kafka", func() bool {
		parts, err := consumer.Partitions(topic)
		if err != nil {
			return false
		}
		for _, p := range parts {
			pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
			if err != nil {
				return false
			}
			hw := pc.HighWaterMarkOffset()
		read:
			for hw > 0 {
				select {
				case m := <-pc.Messages():
					if _, ok := want[string(m.Key)]; ok {
						var env struct{ Actor string }
						json.Unmarshal(m.Value, &env)
						got[string(m.Key)] = env.Actor
					}
					if m.Offset >= hw-1 {
						break read
					}
				case <-time.After(2 * time.Second):
					break read
				}
			}
			pc.Close()
		}
		return len(got) == len(want)
	})
	for k, actor := range want {
		if got[k] != actor {
			t.Errorf("event %s: actor %q, want %q", k, got[k], actor)
		}
	}
}

func writeFile(name, content string) error {
	return os.WriteFile(name, []byte(content), 0o600)
}

// TestWebsocketMessageExchange pins the exchanges of both subprotocols
// message by message, as clients written elsewhere expect them: the legacy
// keep-alive right after connection_ack, a pong before connection_init
// ignored, ping answered by pong with its
// payload, a query answered by next/data then complete, a validation
// failure answered by one error (which ends the operation: no complete
// follows), a stop answered by complete, and connection_terminate closing
// the socket normally.
func TestWebsocketMessageExchange(t *testing.T) {
	g := startGateway(t)
	// raw reads the next message, keep-alives included.
	raw := func(w *ws) wsMessage {
		t.Helper()
		w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var m wsMessage
		if err := w.c.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		return m
	}
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			legacy := proto == "graphql-ws"
			sub, stop, data := "subscribe", "complete", "next"
			if legacy {
				sub, stop, data = "start", "stop", "data"
			}
			w := mustDial(t, g, proto)
			if !legacy {
				// A pong may come at any time, before connection_init too.
				w.send(map[string]any{"type": "pong"})
			}
			w.send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
			if m := raw(w); m.Type != "connection_ack" || len(m.Payload) != 0 {
				t.Fatalf("want connection_ack without payload, got %s %s", m.Type, m.Payload)
			}
			if legacy {
				if m := raw(w); m.Type != "ka" {
					t.Fatalf("want ka after connection_ack, got %s", m.Type)
				}
			} else {
				w.send(map[string]any{"type": "ping", "payload": map[string]any{"n": 1}})
				if m := raw(w); m.Type != "pong" || string(m.Payload) != `{"n":1}` {
					t.Fatalf("want pong with the ping's payload, got %s %s", m.Type, m.Payload)
				}
			}
			// A query over the socket: its answer, then complete.
			w.send(map[string]any{"id": "q", "type": sub, "payload": map[string]any{"query": `{ customer(id: 1) { id } }`}})
			m, c, _ := w.read()
			if c != 0 || m.Type != data || m.ID != "q" || !strings.Contains(string(m.Payload), `"customer":{"id":"1"}`) {
				t.Fatalf("query: %s %s %s (close %d)", m.Type, m.ID, m.Payload, c)
			}
			if m, _, _ := w.read(); m.Type != "complete" || m.ID != "q" {
				t.Fatalf("after the query's answer: %s %s", m.Type, m.ID)
			}
			// A document that does not validate: one error, nothing more
			// for its id (the next message is the next query's).
			w.send(map[string]any{"id": "bad", "type": sub, "payload": map[string]any{"query": `{ noSuchField }`}})
			if m, _, _ := w.read(); m.Type != "error" || m.ID != "bad" || !strings.Contains(string(m.Payload), "noSuchField") {
				t.Fatalf("invalid document: %s %s %s", m.Type, m.ID, m.Payload)
			}
			w.send(map[string]any{"id": "q2", "type": sub, "payload": map[string]any{"query": `{ customer(id: 2) { id } }`}})
			if m, _, _ := w.read(); m.Type != data || m.ID != "q2" {
				t.Fatalf("after an error, want the next query's %s, got %s %s %s", data, m.Type, m.ID, m.Payload)
			}
			if m, _, _ := w.read(); m.Type != "complete" || m.ID != "q2" {
				t.Fatalf("after the query's answer: %s %s", m.Type, m.ID)
			}
			// A subscription stopped by the client is completed.
			w.send(map[string]any{"id": "s", "type": sub, "payload": map[string]any{"query": changesSub}})
			w.send(map[string]any{"id": "s", "type": stop})
			if m, _, _ := w.read(); m.Type != "complete" || m.ID != "s" {
				t.Fatalf("after %s: %s %s %s", stop, m.Type, m.ID, m.Payload)
			}
			if legacy {
				w.send(map[string]any{"type": "connection_terminate"})
				w.closed(websocket.CloseNormalClosure, "terminated")
			}
		})
	}
}

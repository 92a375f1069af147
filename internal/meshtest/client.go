package meshtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// client is shared by every request: keep-alive connections to a killed
// process fail and are replaced.
var client = &http.Client{Timeout: 30 * time.Second}

// Response is a GraphQL response and its HTTP status.
type Response struct {
	Status int
	Data   map[string]any `json:"data"`
	Errors []Error        `json:"errors"`
}

// Error is a GraphQL error.
type Error struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// Code returns the error's extensions.code.
func (e Error) Code() string {
	c, _ := e.Extensions["code"].(string)
	return c
}

// Code returns the code of the response's first error ("" without one).
func (r *Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].Code()
}

// Err returns the response's errors as an error (nil without any).
func (r *Response) Err() error {
	if len(r.Errors) == 0 {
		return nil
	}
	return fmt.Errorf("HTTP %d: %s: %s", r.Status, r.Code(), r.Errors[0].Message)
}

// Query posts a GraphQL request to base (http://host:port). An error means
// no GraphQL response arrived (the request may or may not have run).
func Query(ctx context.Context, base, query string, vars map[string]any) (*Response, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := &Response{Status: resp.StatusCode}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("HTTP %d, not a GraphQL response: %v: %.200s", resp.StatusCode, err, b)
	}
	return out, nil
}

// Ready returns the HTTP status of base's /readyz (0 when unreachable).
func Ready(ctx context.Context, base string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
	if err != nil {
		return 0
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Metrics returns base's /metrics samples by name with labels, e.g.
// `go_goroutines` or `meshgate_consumer_lag{product="sales",source="orders"}`.
func Metrics(ctx context.Context, base string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// LagZero tells whether base reports every reacting product caught up with
// every source (the consumerLag query).
func LagZero(ctx context.Context, base string) (bool, error) {
	r, err := Query(ctx, base, `{ consumerLag { product source lag } }`, nil)
	if err != nil {
		return false, err
	}
	if err := r.Err(); err != nil {
		return false, err
	}
	for _, l := range r.Data["consumerLag"].([]any) {
		if l.(map[string]any)["lag"].(float64) != 0 {
			return false, nil
		}
	}
	return true, nil
}

// Event is one event of a subscription: the subscribed field's value.
type Event struct {
	Sequence int64
	Cursor   string
	Value    map[string]any
}

// Subscription is one graphql-transport-ws subscription on its own
// connection. Its events arrive on Events, which is closed when the
// subscription ends (Err then tells why).
type Subscription struct {
	Events chan Event
	conn   *websocket.Conn
	mu     sync.Mutex
	err    error
}

// Subscribe opens a websocket to base, subscribes with query (a
// subscription of one field whose value has sequence and cursor) and
// returns once the server acknowledged the connection. field names the
// subscribed field.
func Subscribe(ctx context.Context, base, field, query string, vars map[string]any) (*Subscription, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 10 * time.Second}
	c, _, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql", nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", base, err)
	}
	fail := func(err error) (*Subscription, error) {
		c.Close()
		return nil, err
	}
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{}}); err != nil {
		return fail(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ack struct{ Type string }
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		return fail(fmt.Errorf("connection_ack from %s: %v %+v", base, err, ack))
	}
	c.SetReadDeadline(time.Time{})
	if err := c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		return fail(err)
	}
	s := &Subscription{Events: make(chan Event, 1<<16), conn: c}
	go s.read(field)
	return s, nil
}

func (s *Subscription) read(field string) {
	defer close(s.Events)
	for {
		var m struct {
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := s.conn.ReadJSON(&m); err != nil {
			s.end(fmt.Errorf("connection: %w", err))
			return
		}
		switch m.Type {
		case "ping":
			s.conn.WriteJSON(map[string]any{"type": "pong"})
		case "next":
			var p struct {
				Data   map[string]map[string]any `json:"data"`
				Errors []Error                   `json:"errors"`
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				s.end(fmt.Errorf("next: %w", err))
				return
			}
			if len(p.Errors) > 0 {
				s.end(fmt.Errorf("next with errors: %s: %s", p.Errors[0].Code(), p.Errors[0].Message))
				return
			}
			v := p.Data[field]
			seq, _ := v["sequence"].(float64)
			cursor, _ := v["cursor"].(string)
			s.Events <- Event{Sequence: int64(seq), Cursor: cursor, Value: v}
		case "error":
			s.end(fmt.Errorf("error: %s", m.Payload))
			return
		case "complete":
			s.end(fmt.Errorf("complete: %s", m.Payload))
			return
		}
	}
}

func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// Err tells why the subscription ended (after Events is closed).
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close closes the connection.
func (s *Subscription) Close() {
	s.end(fmt.Errorf("closed by the client"))
	s.conn.Close()
}

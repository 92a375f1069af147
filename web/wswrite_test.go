package web

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wsPair returns a server's socket (as accept makes it) and a client
// connected to it.
func wsPair(t *testing.T) (*gorillaConn, *websocket.Conn) {
	t.Helper()
	conns := make(chan *gorillaConn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gc, err := gorillaWebsocket{}.accept(w, r)
		if err != nil {
			t.Error(err)
			return
		}
		conns <- gc
	}))
	t.Cleanup(srv.Close)
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	gc := <-conns
	t.Cleanup(func() { gc.Close() })
	return gc, c
}

// TestWSOutFrames: messages of every header size (7-bit, 16-bit and
// 64-bit lengths, around their limits), held and not, from several
// goroutines at once that flush concurrently, reach a gorilla client
// whole, each goroutine's in order, none lost or repeated; held messages
// go out in fewer writes; a ping is answered after what was held.
func TestWSOutFrames(t *testing.T) {
	gc, c := wsPair(t)
	sizes := []int{0, 1, 100, 125 - 30, 126 - 30, 127, 1000, 65535 - 30, 65536 - 30, 70000}
	const senders, rounds = 4, 30
	writes0 := gc.out.writes.Load()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for r := range rounds {
				size := sizes[r%len(sizes)]
				payload := `"` + strings.Repeat("x", size) + `"`
				if err := gc.send("next", fmt.Sprintf("%d:%d", s, r), []byte(payload), r%7 != 6); err != nil {
					t.Error(err)
					return
				}
				if r%5 == 4 {
					gc.flush()
				}
			}
			gc.flush()
		})
	}
	next := make([]int, senders)
	for range senders * rounds {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var m struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Payload string `json:"payload"`
		}
		if err := c.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		s, r, _ := strings.Cut(m.ID, ":")
		si, _ := strconv.Atoi(s)
		ri, _ := strconv.Atoi(r)
		if m.Type != "next" || si < 0 || si >= senders || ri != next[si] || len(m.Payload) != sizes[ri%len(sizes)] {
			t.Fatalf("got %s %s with %d bytes; want %d:%d", m.Type, m.ID, len(m.Payload), si, next[si])
		}
		next[si]++
	}
	wg.Wait()
	if w := gc.out.writes.Load() - writes0; w >= senders*rounds {
		t.Errorf("%d messages in %d writes", senders*rounds, w)
	}
	if gc.out.pending != nil {
		t.Error("a socket with nothing to write holds a buffer")
	}

	// A held message, then a ping from the client: the held message is
	// written before the pong.
	if err := gc.send("next", "held", []byte(`"last"`), true); err != nil {
		t.Fatal(err)
	}
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	if err := c.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() {
		// The server reads the ping (and answers it) in its read loop.
		gc.c.NextReader()
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.ReadMessage() // handles the pong first, if it came first
	if err != nil || !strings.Contains(string(b), `"id":"held"`) {
		t.Fatalf("%s %v", b, err)
	}
	select {
	case <-pong:
		t.Fatal("the pong came before the held message")
	default:
	}
}

package web

import (
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebsocketPingLiveness: the gateway pings every websocket each
// interval, again and again, and drops a peer that stays silent for two
// intervals; a peer that answers stays connected.
func TestWebsocketPingLiveness(t *testing.T) {
	const interval = 250 * time.Millisecond
	srv := httptest.NewServer(NewServer(Config{Resolver: catalogResolver(openCatalogMesh(t, "sqlite")), PingInterval: interval}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/graphql"
	// dial connects a peer that counts the pings it gets (answering them
	// with pongs or not) and records when its connection ends.
	dial := func(answer bool) (pings *atomic.Int64, closed chan struct{}) {
		d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
		c, _, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		pings, closed = &atomic.Int64{}, make(chan struct{})
		c.SetPingHandler(func(data string) error {
			pings.Add(1)
			if !answer {
				return nil
			}
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		go func() {
			defer close(closed)
			for {
				if _, _, err := c.NextReader(); err != nil {
					return
				}
			}
		}()
		return pings, closed
	}
	livePings, liveClosed := dial(true)
	silentPings, silentClosed := dial(false)
	select {
	case <-silentClosed:
	case <-time.After(30 * time.Second):
		t.Fatal("a peer that never answered pings was not dropped within 30 s")
	}
	if silentPings.Load() == 0 {
		t.Fatal("the silent peer was dropped without being pinged")
	}
	deadline := time.Now().Add(30 * time.Second)
	for livePings.Load() < 4 {
		select {
		case <-liveClosed:
			t.Fatalf("a peer answering pings was dropped after %d pings", livePings.Load())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live peer got %d pings in 30 s, want them every %v", livePings.Load(), interval)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-liveClosed:
		t.Fatal("a peer answering pings was dropped")
	default:
	}
}

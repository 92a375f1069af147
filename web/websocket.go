package web

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
)

// gorillaWebsocket plugs github.com/gorilla/websocket into gqlgen's websocket
// transport (which defaults to coder/websocket). It negotiates both GraphQL
// subprotocols (graphql-transport-ws and the legacy graphql-ws) and checks
// the Origin: same host, or one of the allowed origins.
type gorillaWebsocket struct {
	allowedOrigins []string
	// pingInterval, if set, sends websocket ping frames that every client
	// library answers; a peer silent for two intervals is dropped, so dead
	// connections are noticed on both subprotocols.
	pingInterval time.Duration
	// writeBuffer, if set, is the kernel send buffer of each websocket's
	// TCP connection: it bounds the memory a stalled client pins, and makes
	// a stalled client show up as a slow consumer sooner.
	writeBuffer int
}

var _ transport.WebsocketImplementation = gorillaWebsocket{}

func (g gorillaWebsocket) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	up := websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     opts.Subprotocols,
		CheckOrigin:      g.checkOrigin,
		ReadBufferSize:   4096,
		WriteBufferSize:  4096,
	}
	c, err := up.Upgrade(w, r, opts.ResponseHeader)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.NetConn().(*net.TCPConn); ok && g.writeBuffer > 0 {
		tc.SetWriteBuffer(g.writeBuffer)
	}
	gc := &gorillaConn{c: c, done: make(chan struct{})}
	if g.pingInterval > 0 {
		gc.keepAlive(g.pingInterval)
	}
	return gc, nil
}

// checkOrigin accepts requests without an Origin (non-browser clients), from
// the same host, or from an allowed origin ("*" allows any).
func (g gorillaWebsocket) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return slices.ContainsFunc(g.allowedOrigins, func(o string) bool {
		return o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin)
	})
}

// gorillaConn adapts *websocket.Conn. gorilla allows one concurrent writer,
// so writes are serialised; control frames may be written concurrently.
type gorillaConn struct {
	c         *websocket.Conn
	mu        sync.Mutex
	done      chan struct{}
	closeOnce sync.Once
}

// keepAlive pings the peer every interval until the connection closes and
// expects some frame (a pong at least) within two intervals.
func (g *gorillaConn) keepAlive(interval time.Duration) {
	g.c.SetReadDeadline(time.Now().Add(2 * interval))
	g.c.SetPongHandler(func(string) error {
		return g.c.SetReadDeadline(time.Now().Add(2 * interval))
	})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-g.done:
				return
			case <-t.C:
				if err := g.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(interval)); err != nil {
					g.c.Close()
					return
				}
			}
		}
	}()
}

func (g *gorillaConn) Close() error {
	g.closeOnce.Do(func() { close(g.done) })
	return g.c.Close()
}

func (g *gorillaConn) NextReader() (int, io.Reader, error) {
	t, r, err := g.c.NextReader()
	var ce *websocket.CloseError
	if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway || ce.Code == websocket.CloseNoStatusReceived) {
		return t, nil, transport.ErrWebsocketClosed
	}
	return t, r, err
}

func (g *gorillaConn) WriteJSON(v any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return g.c.WriteJSON(v)
}

func (g *gorillaConn) WriteClose(code int, message string) error {
	return g.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, message), time.Now().Add(time.Second))
}

func (g *gorillaConn) Subprotocol() string { return g.c.Subprotocol() }

func (g *gorillaConn) SetReadLimit(limit int64) { g.c.SetReadLimit(limit) }

func (g *gorillaConn) SetReadDeadline(t time.Time) error { return g.c.SetReadDeadline(t) }

var _ transport.WebsocketReadDeadliner = (*gorillaConn)(nil)

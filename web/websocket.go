package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"golang.org/x/time/rate"

	"github.com/meshgate/meshgate/products"
)

// gorillaWebsocket plugs github.com/gorilla/websocket into gqlgen's websocket
// transport (which defaults to coder/websocket). It negotiates both GraphQL
// subprotocols (graphql-transport-ws and the legacy graphql-ws) and checks
// the Origin: same host, or one of the allowed origins.
//
// Its connections also police the protocol where gqlgen's transport is
// lenient (see gorillaConn.NextReader): the graphql-transport-ws close codes
// for invalid messages (4400), subscribe before acknowledgement (4401),
// duplicate ids (4409), repeated connection_init (4429) and a missing init
// (4408); binary frames are refused; and the limits on subscriptions per
// connection, messages per second and operations per identity apply.
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
	// initTimeout closes connections without connection_init (4408).
	initTimeout time.Duration
	// maxSubscriptions bounds the active subscriptions of one connection.
	maxSubscriptions int
	// messageRate bounds the messages a client sends per second (burst:
	// twice as many); a flood closes the connection with 1008.
	messageRate float64
	// limiter, if set, counts every subscribe against the caller's rate.
	limiter *rateLimiter
	// sockets, if set, tracks the open websockets for a graceful shutdown.
	sockets *Websockets
	// writes, if set, counts the websockets' messages and writes.
	writes *wsWriteMetrics
}

// Websockets tracks the open websockets of a server: net/http's Shutdown
// does not see hijacked connections, so a graceful shutdown ends them
// with Shutdown.
type Websockets struct {
	mu      sync.Mutex
	conns   map[*gorillaConn]struct{}
	closing bool
}

// NewWebsockets returns an empty registry (web.Config.Websockets).
func NewWebsockets() *Websockets { return &Websockets{conns: map[*gorillaConn]struct{}{}} }

// closeGoingAway is the close code of a websocket ended by a shutdown:
// 1001 (going away), on which graphql-transport-ws and
// subscriptions-transport-ws clients reconnect.
const closeGoingAway = websocket.CloseGoingAway

// Shutdown ends every websocket, present and future: each waits until its
// operations have ended — the caller drains the subscription hub first,
// so that every subscription ends with a last message carrying its cursor
// (extensions.cursor) and its complete — and then closes with 1001 going
// away. When ctx ends first the remaining sockets close with 1001 at once.
// It returns when every socket is closed: nil, or ctx's error.
func (w *Websockets) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	conns := make([]*gorillaConn, 0, len(w.conns))
	for c := range w.conns {
		conns = append(conns, c)
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			select {
			case <-c.drain():
			case <-ctx.Done():
			case <-c.done:
			}
			c.closeWith(closeGoingAway, "server shutting down: reconnect and resume with your cursors")
		})
	}
	wg.Wait()
	return ctx.Err()
}

// Len returns how many websockets are open.
func (w *Websockets) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.conns)
}

// add registers a new socket; false when the server is shutting down.
func (w *Websockets) add(c *gorillaConn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closing {
		return false
	}
	w.conns[c] = struct{}{}
	return true
}

func (w *Websockets) remove(c *gorillaConn) {
	w.mu.Lock()
	delete(w.conns, c)
	w.mu.Unlock()
}

// wsSubprotocols are the subprotocols a websocket may negotiate; a client
// that asks for none gets graphql-ws.
var wsSubprotocols = []string{"graphql-ws", "graphql-transport-ws"}

// accept upgrades the request to a websocket.
func (g gorillaWebsocket) accept(w http.ResponseWriter, r *http.Request) (*gorillaConn, error) {
	// What an idle websocket holds: net/http keeps the hijacked
	// connection's bufio.Reader and bufio.Writer (4 KiB each) referenced
	// for as long as the handler runs, which is the socket's life. Both
	// buffers are released (releaseWriter); the websocket reads through a
	// small buffer of its own (wsReadBuffer) and writes messages through
	// pooled buffers, taken while it has messages to write (wsOut): an
	// idle socket holds 512 bytes of buffers instead of 16 KiB. gorilla reads through the reader the
	// hijack hands it (ReadBufferSize 0 and a reader of more than 256
	// bytes), so that the read loop sees what it holds (gorillaConn.wait).
	up := websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		Subprotocols:     wsSubprotocols,
		CheckOrigin:      g.checkOrigin,
		WriteBufferPool:  wsWriteBuffers,
	}
	rw := &releaseWriter{ResponseWriter: w, writes: g.writes}
	c, err := up.Upgrade(rw, r, nil)
	if err != nil {
		return nil, err
	}
	// The HTTP server's read deadline (if any) is still set on the
	// hijacked connection: websockets live longer.
	c.NetConn().SetDeadline(time.Time{})
	// Pongs go through the socket's writes without failing the connection
	// when they cannot (wsOut.pong).
	c.SetPingHandler(rw.out.pong)
	var raw syscall.RawConn
	if tc, ok := rw.out.Conn.(*net.TCPConn); ok {
		if g.writeBuffer > 0 {
			tc.SetWriteBuffer(g.writeBuffer)
		}
		raw, _ = tc.SyscallConn()
	}
	gc := &gorillaConn{c: c, out: rw.out, br: rw.br, done: make(chan struct{}), active: map[string]bool{},
		maxSubs: g.maxSubscriptions, limiter: g.limiter, rateKey: clientKey(r, products.IdentityFrom(r.Context()))}
	gc.raw = raw
	if g.messageRate > 0 {
		gc.flood = rate.NewLimiter(rate.Limit(g.messageRate), int(2*g.messageRate)+1)
	}
	if s := sessionFrom(r.Context()); s != nil {
		s.conn = gc
	}
	if g.sockets != nil {
		gc.sockets = g.sockets
		if !g.sockets.add(gc) {
			// Opened while the server shuts down: go elsewhere.
			gc.closeWith(closeGoingAway, "server shutting down: reconnect")
			return gc, nil
		}
	}
	if g.pingInterval > 0 {
		gc.keepAlive(g.pingInterval)
	}
	if g.initTimeout > 0 {
		gc.initTimer = time.AfterFunc(g.initTimeout, func() {
			gc.mu.Lock()
			acked := gc.acked
			gc.mu.Unlock()
			if !acked {
				gc.closeWith(closeInitTimeout, "Connection initialisation timeout")
			}
		})
	}
	return gc, nil
}

// wsWriteBuffers are gorilla's write buffers, of which it needs none: the
// socket's messages are framed and written by wsOut, and gorilla writes
// only control frames, which need no buffer.
var wsWriteBuffers = &sync.Pool{}

// wsReadBuffer is the size of a websocket's read buffer, held for its
// life (more than 256 bytes, or gorilla allocates one of its own). Client messages are small (subscribe, complete, pong); a large one
// is read past the buffer straight from the connection. It holds a frame
// header and a control frame's payload (125 bytes) whole, as gorilla needs.
const wsReadBuffer = 512

// releaseWriter hijacks the connection for the websocket and drops the
// buffers of the bufio.Writer and bufio.Reader that net/http hands over:
// the websocket writes through pooled buffers and reads through a small
// buffer of its own (Upgrader.ReadBufferSize) instead, and net/http, which
// does nothing more with a hijacked connection's reader and writer but
// keeps them referenced until the handler returns, would otherwise pin
// their 4 KiB each for the socket's life. The upgrade's response goes out
// through a writer of the hijacked connection's own, and the websocket
// reads through br, a small reader of its own (wsReadBuffer). The
// websocket writes through out (wsOut), which Hijack wraps around the
// connection.
type releaseWriter struct {
	http.ResponseWriter
	writes *wsWriteMetrics
	br     *bufio.Reader // set by Hijack unless net/http's reader holds bytes
	out    *wsOut        // set by Hijack
}

func (w *releaseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response writer cannot be hijacked (http.Hijacker)")
	}
	conn, brw, err := h.Hijack()
	if err != nil {
		return conn, brw, err
	}
	w.out = newWSOut(conn, w.writes)
	if brw.Writer.Buffered() > 0 {
		return w.out, brw, nil // not net/http's: leave it as it is
	}
	// The caller owns a hijacked connection's bufio.ReadWriter. A reader
	// holding bytes is kept (the upgrade refuses a client that sent data
	// before its handshake completed); an empty one is of no more use.
	br := brw.Reader
	if br.Buffered() == 0 {
		*br = bufio.Reader{}
		w.br = bufio.NewReaderSize(conn, wsReadBuffer)
		br = w.br
	}
	*brw.Writer = bufio.Writer{}
	return w.out, bufio.NewReadWriter(br, bufio.NewWriterSize(w.out, 16)), nil
}

// checkOrigin accepts requests without an Origin (non-browser clients), from
// the same host, or from an allowed origin ("*" allows any). It is what
// stops cross-site websocket hijacking: a page elsewhere cannot open a
// socket in its visitor's name (and no cookie would authenticate it anyway).
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

// wsSession links a websocket's connection (made in Accept) to its
// connection_init (handled by wsInit): both see the upgrade request's
// context, where session puts it.
type wsSession struct{ conn *gorillaConn }

type sessionKey struct{}

func withSession(ctx context.Context) context.Context {
	return context.WithValue(ctx, sessionKey{}, &wsSession{})
}

func sessionFrom(ctx context.Context) *wsSession {
	s, _ := ctx.Value(sessionKey{}).(*wsSession)
	return s
}

// authenticated records the identity of the socket: its subscriptions are
// counted against that identity's rate, and the socket closes (4403) when
// the identity's credential expires.
func (s *wsSession) authenticated(ctx context.Context, id *products.Identity) {
	if s.conn == nil {
		return
	}
	s.conn.mu.Lock()
	if !id.Dev {
		s.conn.rateKey = "id:" + id.Subject
	}
	s.conn.mu.Unlock()
	if !id.Expiry.IsZero() {
		s.conn.expireAt(id.Expiry)
	}
}

// gorillaConn adapts *websocket.Conn. Its messages are written by out
// (wsOut), which serialises them with gorilla's control frames. Its reads
// come from the socket's one reader goroutine (wsConn.run).
type gorillaConn struct {
	c   *websocket.Conn
	out *wsOut
	// br is the reader gorilla reads the connection through, and raw the
	// connection's descriptor (both nil when unknown): see wait.
	br        *bufio.Reader
	raw       syscall.RawConn
	done      chan struct{}
	closeOnce sync.Once
	initTimer *time.Timer

	maxSubs int
	flood   *rate.Limiter
	limiter *rateLimiter
	sockets *Websockets

	mu          sync.Mutex // guards the fields below
	inits       int
	acked       bool
	active      map[string]bool // ids of running subscriptions
	rateKey     string
	expiryTimer *time.Timer
	pingTimer   *time.Timer // sends the next ping (keepAlive)
	// drained, once a shutdown waits for it, is closed when no operation
	// of the socket is running any more.
	drained chan struct{}
}

// drain returns a channel closed once the socket runs no operation.
func (g *gorillaConn) drain() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.drained == nil {
		g.drained = make(chan struct{})
		g.checkDrained()
	}
	return g.drained
}

// checkDrained closes drained when a shutdown waits and nothing runs
// (g.mu held).
func (g *gorillaConn) checkDrained() {
	if g.drained != nil && len(g.active) == 0 {
		select {
		case <-g.drained:
		default:
			close(g.drained)
		}
	}
}

// keepAlive pings the peer every interval until the connection closes and
// expects some frame (a pong at least) within two intervals.
func (g *gorillaConn) keepAlive(interval time.Duration) {
	g.c.SetReadDeadline(time.Now().Add(2 * interval))
	g.c.SetPongHandler(func(string) error {
		return g.c.SetReadDeadline(time.Now().Add(2 * interval))
	})
	// A timer, not a goroutine: an idle socket costs no stack for it.
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pingTimer = time.AfterFunc(interval, func() {
		select {
		case <-g.done:
			return
		default:
		}
		if err := g.c.WriteControl(websocket.PingMessage, nil, time.Now().Add(interval)); err != nil {
			g.c.Close()
			return
		}
		g.mu.Lock()
		g.pingTimer.Reset(interval)
		g.mu.Unlock()
	})
}

// expireAt closes the connection with 4403 when the credential expires.
func (g *gorillaConn) expireAt(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.expiryTimer != nil {
		g.expiryTimer.Stop()
	}
	g.expiryTimer = time.AfterFunc(time.Until(t), func() {
		if g.c.Subprotocol() != "graphql-transport-ws" {
			// The legacy protocol has a message for connection errors.
			g.WriteJSON(map[string]any{"type": "connection_error", "payload": map[string]any{
				"message": "token expired", "extensions": map[string]any{"code": string(products.Unauthenticated)}}})
		}
		g.closeWith(closeForbidden, "Forbidden: token expired")
	})
}

func (g *gorillaConn) Close() error {
	g.closeOnce.Do(func() {
		close(g.done)
		if g.initTimer != nil {
			g.initTimer.Stop()
		}
		g.mu.Lock()
		if g.expiryTimer != nil {
			g.expiryTimer.Stop()
		}
		if g.pingTimer != nil {
			g.pingTimer.Stop()
		}
		g.mu.Unlock()
		if g.sockets != nil {
			g.sockets.remove(g)
		}
	})
	return g.c.Close()
}

// closeWith sends a close frame with code and reason, then closes the
// connection: the socket's reader sees the connection end and cancels the
// socket's subscriptions.
func (g *gorillaConn) closeWith(code int, reason string) {
	g.WriteClose(code, reason)
	g.Close()
}

// errPoliced ends the read loop after closeWith.
var errPoliced = errors.New("websocket closed: protocol violation")

// errClosed ends the read loop when the peer closed the websocket.
var errClosed = errors.New("websocket closed by the peer")

// envelope is a client message.
type envelope struct {
	Type    string          `json:"type"`
	ID      *string         `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// id is the message's id ("" without one).
func (m envelope) id() string {
	if m.ID == nil {
		return ""
	}
	return *m.ID
}

// clientTypes are the messages a client may send, per subprotocol.
var clientTypes = map[string]map[string]bool{
	"graphql-transport-ws": {"connection_init": true, "ping": true, "pong": true, "subscribe": true, "complete": true},
	"graphql-ws":           {"connection_init": true, "start": true, "stop": true, "connection_terminate": true},
}

// next returns the next client message for the session (wsConn).
// Protocol violations close the socket with their code and end the read
// loop; a subscribe over the limits is answered with an error for its id
// here and never reaches the session.
func (g *gorillaConn) next() (envelope, error) {
	for {
		t, r, err := g.c.NextReader()
		var ce *websocket.CloseError
		if errors.As(err, &ce) && (ce.Code == websocket.CloseNormalClosure || ce.Code == websocket.CloseGoingAway || ce.Code == websocket.CloseNoStatusReceived) {
			return envelope{}, errClosed
		}
		if err != nil {
			return envelope{}, err
		}
		if g.flood != nil && !g.flood.Allow() {
			g.closeWith(closePolicyViolated, "too many messages")
			return envelope{}, errPoliced
		}
		if t != websocket.TextMessage {
			g.closeWith(closeBadRequest, "Invalid message: binary frames are not accepted")
			return envelope{}, errPoliced
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return envelope{}, err
		}
		m, pass, err := g.police(b)
		if err != nil {
			return envelope{}, err
		}
		if pass {
			return m, nil
		}
	}
}

// police checks one client message; pass is false when the message was
// answered here.
func (g *gorillaConn) police(b []byte) (m envelope, pass bool, err error) {
	proto := g.c.Subprotocol()
	if proto == "" {
		proto = "graphql-ws"
	}
	if err := json.Unmarshal(b, &m); err != nil {
		g.closeWith(closeBadRequest, "Invalid message: not a JSON object")
		return m, false, errPoliced
	}
	if !clientTypes[proto][m.Type] {
		g.closeWith(closeBadRequest, truncate(fmt.Sprintf("Invalid message: unknown type %q", m.Type)))
		return m, false, errPoliced
	}
	g.mu.Lock()
	acked := g.acked
	g.mu.Unlock()
	switch m.Type {
	case "connection_init":
		g.mu.Lock()
		g.inits++
		n := g.inits
		g.mu.Unlock()
		if n > 1 {
			g.closeWith(closeTooManyInits, "Too many initialisation requests")
			return m, false, errPoliced
		}
		return m, true, nil
	case "ping":
		if !acked {
			// Allowed at any time; gqlgen answers only after init.
			return m, false, g.WriteJSON(map[string]any{"type": "pong"})
		}
		return m, true, nil
	case "subscribe", "start":
		if !acked {
			g.closeWith(closeUnauthorized, "Unauthorized")
			return m, false, errPoliced
		}
		if m.ID == nil || *m.ID == "" {
			g.closeWith(closeBadRequest, "Invalid message: subscribe needs an id")
			return m, false, errPoliced
		}
		id := *m.ID
		g.mu.Lock()
		dup, n, key := g.active[id], len(g.active), g.rateKey
		g.mu.Unlock()
		if dup {
			g.closeWith(closeDuplicateID, truncate(fmt.Sprintf("Subscriber for %s already exists", id)))
			return m, false, errPoliced
		}
		if g.maxSubs > 0 && n >= g.maxSubs {
			return m, false, g.refuse(id, limitError("subscriptionsPerConnection", g.maxSubs, n+1,
				fmt.Sprintf("at most %d subscriptions per connection", g.maxSubs)))
		}
		if g.limiter != nil {
			if ok, _ := g.limiter.allow(key); !ok {
				return m, false, g.refuse(id, limitError("requestsPerSecond", g.limiter.perSecond(), 0,
					"too many requests; slow down"))
			}
		}
		g.mu.Lock()
		g.active[id] = true
		g.mu.Unlock()
		return m, true, nil
	case "complete", "stop":
		if m.ID != nil {
			g.mu.Lock()
			delete(g.active, *m.ID)
			g.checkDrained()
			g.mu.Unlock()
		}
		return m, true, nil
	}
	return m, true, nil
}

// refuse answers a subscribe with an error message for its id.
func (g *gorillaConn) refuse(id string, e *gqlerror.Error) error {
	return g.WriteJSON(map[string]any{"type": "error", "id": id, "payload": []any{e}})
}

// truncate keeps a close reason within the 123 bytes a close frame holds.
func truncate(s string) string {
	for len(s) > 123 {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// send writes one message of the session and follows the server's side
// of the protocol: connection_ack opens the socket for subscriptions,
// complete and error end one. payload is JSON (nil: none). With hold the
// message may wait in the socket's buffer until the stream that made it
// has delivered what waits for it (flush; see wsOut).
func (g *gorillaConn) send(typ, id string, payload []byte, hold bool) error {
	g.mu.Lock()
	switch typ {
	case "connection_ack":
		g.acked = true
		if g.initTimer != nil {
			g.initTimer.Stop()
		}
	case "complete", "error":
		delete(g.active, id)
		defer func() {
			// After the message is written: a shutdown closes the
			// socket once the last one is out.
			g.mu.Lock()
			g.checkDrained()
			g.mu.Unlock()
		}()
	}
	g.mu.Unlock()
	return g.out.message(hold, func(b []byte) []byte {
		// As gqlgen wrote them: payload, id, type.
		b = append(b, '{')
		if len(payload) > 0 {
			b = append(b, `"payload":`...)
			b = append(b, payload...)
			b = append(b, ',')
		}
		if id != "" {
			q, _ := json.Marshal(id)
			b = append(b, `"id":`...)
			b = append(b, q...)
			b = append(b, ',')
		}
		b = append(b, `"type":"`...)
		b = append(b, typ...)
		return append(b, `"}`...)
	})
}

// flush writes the messages the socket holds (resolvers.Pull.Idle).
func (g *gorillaConn) flush() { g.out.flush() }

// WriteJSON writes one message that the session does not track (a
// refusal, a pong before the acknowledgement, connection_error), as
// gorilla's WriteJSON wrote it (with a newline).
func (g *gorillaConn) WriteJSON(v any) error {
	j, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return g.out.message(false, func(b []byte) []byte {
		return append(append(b, j...), '\n')
	})
}

func (g *gorillaConn) WriteClose(code int, message string) error {
	return g.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, truncate(message)), time.Now().Add(time.Second))
}

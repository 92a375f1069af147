package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshgate/meshgate/resolvers"
)

// wsTransport serves GraphQL over websockets, graphql-transport-ws and the
// legacy graphql-ws (subscriptions-transport-ws), in place of gqlgen's
// transport.Websocket, whose protocol it speaks message for message. It
// differs in what an idle socket costs: gqlgen keeps three goroutines per
// socket and subscription (its read loop, one waiting to close the socket
// and one blocked in each subscription's response handler). Here a socket
// has one goroutine, its read loop (the HTTP handler's); the legacy
// keep-alive is a timer; and a subscription on the hub has none: its stream
// hands each event over when there is one (resolvers.Pull), and the
// response is computed and written then, on the goroutine the hub runs
// while events wait. Other subscriptions (live aggregates, PII reads) and
// queries and mutations run on a goroutine of their own, as in gqlgen.
//
// The policing of the protocol (close codes, limits, binary frames, the
// message rate) stays in gorillaConn, which hands over only the messages
// that pass it.
type wsTransport struct {
	ws gorillaWebsocket
	// init authenticates connection_init (wsInit).
	init func(ctx context.Context, p transport.InitPayload) (context.Context, error)
	// keepAlive is the interval of the legacy protocol's "ka" messages.
	keepAlive time.Duration
	// readLimit bounds one client message (0: none).
	readLimit int64
	// open counts the open websockets (meshgate_websocket_connections).
	open prometheus.Gauge
	// shares groups the subscriptions that share their events' responses
	// (nil: none do).
	shares *shareGroups
}

var _ graphql.Transport = wsTransport{}

func (t wsTransport) Supports(r *http.Request) bool { return r.Header.Get("Upgrade") != "" }

func (t wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	gc, err := t.ws.accept(w, r)
	if err != nil {
		return // gorilla answered the failed handshake
	}
	if t.readLimit > 0 {
		gc.c.SetReadLimit(t.readLimit)
	}
	if t.open != nil {
		t.open.Inc()
	}
	// The socket outlives the request: net/http cancels the request's
	// context when the handler returns, which it does once the session
	// is set up. The context's values (identity, session, request id)
	// stay; nothing else ends the request's context of a hijacked
	// connection (the server sets no base context that ends).
	c := &wsConn{t: &t, gc: gc, exec: exec, legacy: gc.c.Subprotocol() != graphqlTransportWS,
		ctx: context.WithoutCancel(r.Context()), headers: r.Header, active: map[string]*wsOperation{}}
	if !c.init() {
		c.closed()
		return
	}
	// The read loop runs on a goroutine of its own and the handler
	// returns: the handler's goroutine went through the HTTP server and
	// every middleware, and its stack (16 KiB) could not shrink while
	// the socket is idle; a goroutine started here shrinks to the few
	// frames of the read it waits in.
	go c.run()
}

const graphqlTransportWS = "graphql-transport-ws"

// wsConn is one socket's GraphQL session.
type wsConn struct {
	t       *wsTransport
	gc      *gorillaConn
	exec    graphql.GraphExecutor
	legacy  bool            // graphql-ws, not graphql-transport-ws
	ctx     context.Context // the upgrade request's, then connection_init's
	headers http.Header

	mu     sync.Mutex
	active map[string]*wsOperation
	done   bool        // closed
	ka     *time.Timer // the legacy keep-alive
}

// serverTypes names the server's messages per subprotocol; "" is a message
// the subprotocol does not have (not sent).
var serverTypes = map[string][2]string{
	//                  graphql-transport-ws, graphql-ws
	"connection_ack":   {"connection_ack", "connection_ack"},
	"ka":               {"", "ka"},
	"connection_error": {"", "connection_error"},
	"next":             {"next", "data"},
	"error":            {"error", "error"},
	"complete":         {"complete", "complete"},
	"pong":             {"pong", ""},
}

// send writes one message of the server; typ is graphql-transport-ws's name.
func (c *wsConn) send(typ, id string, payload []byte) { c.write(typ, id, payload, false) }

// sendNext sends a pulled subscription's response to an event: it may wait
// in the socket's buffer until the subscription's stream has delivered
// what waits (its Pull's Idle flushes it).
func (c *wsConn) sendNext(id string, payload []byte) { c.write("next", id, payload, true) }

func (c *wsConn) write(typ, id string, payload []byte, hold bool) {
	names := serverTypes[typ]
	name := names[0]
	if c.legacy {
		name = names[1]
	}
	if name == "" {
		return
	}
	c.gc.send(name, id, payload, hold)
}

// unexpected names a message that is out of place as gqlgen did.
var unexpected = map[string]string{
	"connection_init": "init", "subscribe": "start", "start": "start", "complete": "stop subscription",
	"stop": "stop subscription", "ping": "ping", "pong": "pong", "connection_terminate": "connection close",
}

// init handles the first message: connection_init, authenticated by the
// transport's init function. A pong may come first (graphql-transport-ws
// allows it at any time; a ping before the acknowledgement is answered by
// gorillaConn).
func (c *wsConn) init() bool {
	m, err := c.gc.next()
	for err == nil && m.Type == "pong" && !c.legacy {
		m, err = c.gc.next()
	}
	if err != nil {
		c.close(websocketCloseProtocolError, "decoding error")
		return false
	}
	switch m.Type {
	case "connection_init":
		var payload transport.InitPayload
		if len(m.Payload) > 0 {
			payload = transport.InitPayload{}
			if err := json.Unmarshal(m.Payload, &payload); err != nil {
				c.gc.closeWith(closeBadRequest, "Invalid message: the connection_init payload must be an object")
				return false
			}
		}
		if c.t.init != nil {
			ctx, err := c.t.init(c.ctx, payload)
			if err != nil {
				c.connectionError(err.Error())
				code, reason := websocket1000, "terminated"
				var refused *initRefusal
				if errors.As(err, &refused) {
					code, reason = refused.code, refused.reason
				}
				c.close(code, reason)
				return false
			}
			c.ctx = ctx
		}
		c.send("connection_ack", "", nil)
		c.send("ka", "", nil)
		return true
	case "connection_terminate":
		c.close(websocket1000, "terminated")
		return false
	default:
		c.connectionError("unexpected message " + unexpected[m.Type])
		c.close(websocketCloseProtocolError, "unexpected message")
		return false
	}
}

// Close codes of gqlgen's transport.
const (
	websocket1000               = websocket.CloseNormalClosure
	websocketCloseProtocolError = websocket.CloseProtocolError
)

// closed counts the socket closed (once its session ends).
func (c *wsConn) closed() {
	if c.t.open != nil {
		c.t.open.Dec()
	}
}

// run reads the client's messages until the socket closes, then closes it
// (1000) and ends its operations.
func (c *wsConn) run() {
	defer c.closed()
	if c.legacy && c.t.keepAlive > 0 {
		c.mu.Lock()
		c.ka = time.AfterFunc(c.t.keepAlive, c.keepAlive)
		c.mu.Unlock()
	}
	defer c.close(websocket1000, "terminated")
	for {
		c.gc.wait()
		start := graphql.Now()
		m, err := c.gc.next()
		if err != nil {
			return
		}
		switch m.Type {
		case "subscribe", "start":
			c.subscribe(start, m)
		case "complete", "stop":
			c.mu.Lock()
			op := c.active[m.id()]
			c.mu.Unlock()
			if op != nil {
				op.cancel()
			}
		case "connection_terminate":
			c.close(websocket1000, "terminated")
			return
		case "ping":
			c.send("pong", "", m.Payload)
		case "pong":
		default:
			c.connectionError("unexpected message " + unexpected[m.Type])
			c.close(websocketCloseProtocolError, "unexpected message")
			return
		}
	}
}

// keepAlive sends the legacy protocol's "ka" and sets the next one.
func (c *wsConn) keepAlive() {
	c.mu.Lock()
	closed := c.done
	c.mu.Unlock()
	if closed {
		return
	}
	c.send("ka", "", nil)
	c.mu.Lock()
	if !c.done {
		c.ka.Reset(c.t.keepAlive)
	}
	c.mu.Unlock()
}

// close sends a close frame, ends the operations and closes the socket
// (once).
func (c *wsConn) close(code int, reason string) {
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		return
	}
	c.done = true
	if c.ka != nil {
		c.ka.Stop()
	}
	c.gc.WriteClose(code, reason)
	for _, op := range c.active {
		op.cancel()
	}
	c.mu.Unlock()
	c.gc.Close()
}

// connectionError sends the legacy protocol's connection_error.
func (c *wsConn) connectionError(msg string) {
	b, _ := json.Marshal(&gqlerror.Error{Message: msg})
	c.send("connection_error", "", b)
}

func (c *wsConn) sendError(id string, errs ...*gqlerror.Error) {
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	b, err := json.Marshal(list)
	if err != nil {
		b = []byte(`[{"message":"the error could not be encoded"}]`)
	}
	c.send("error", id, b)
}

func (c *wsConn) sendResponse(id string, resp *graphql.Response) {
	c.send("next", id, encodeResponse(resp))
}

// subscribe starts an operation (any kind: a subscribe of
// graphql-transport-ws or a start of graphql-ws may carry a query or a
// mutation too). It is parsed and validated here, on the read loop.
func (c *wsConn) subscribe(start time.Time, m envelope) {
	id := m.id()
	ctx := graphql.StartOperationTrace(c.ctx)
	params := &graphql.RawParams{}
	dec := json.NewDecoder(bytes.NewReader(m.Payload))
	dec.UseNumber()
	if err := dec.Decode(params); err != nil {
		c.sendError(id, &gqlerror.Error{Message: "invalid json"})
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	params.Headers = c.headers
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			// error ends the operation: nothing follows it (gqlgen sent a
			// complete too, which the protocols do not expect).
			c.sendError(id, resp.Errors...)
			return
		}
		c.sendResponse(id, &graphql.Response{Errors: errs})
		c.send("complete", id, nil)
		return
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	ctx, cancel := context.WithCancel(ctx)
	op := &wsOperation{c: c, id: id, rc: rc, cancel: cancel}
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		cancel()
		return
	}
	c.active[id] = op
	c.mu.Unlock()
	go op.start(ctx)
}

// wsOperation is one operation of a socket.
type wsOperation struct {
	c      *wsConn
	id     string
	rc     *graphql.OperationContext
	cancel context.CancelFunc

	// mu serialises the response handler's calls; the fields below are
	// set once it has been dispatched.
	mu        sync.Mutex
	ctx       context.Context
	responses graphql.ResponseHandler
	ended     bool
	// pull is the stream's, and share the group of a pulled
	// subscription that shares its events' responses (else nil).
	pull  *resolvers.Pull
	share *shareGroup
}

// start dispatches the operation. A subscription that claims the Pull is
// left to its stream (see resolvers.Pull); anything else is answered here,
// response after response, as gqlgen does.
func (o *wsOperation) start(ctx context.Context) {
	pull := &resolvers.Pull{Next: o.next, Idle: o.c.gc.flush}
	o.mu.Lock()
	func() {
		defer o.recover()
		o.responses, o.ctx = o.c.exec.DispatchOperation(resolvers.WithPull(ctx, pull), o.rc)
	}()
	if o.ended || pull.Claimed() {
		if !o.ended {
			o.pull = pull
			if key, ok := o.c.t.shares.shareKey(o.ctx, o.rc); ok {
				o.share = o.c.t.shares.join(key)
			}
		}
		// The stream calls next, which waits for o.mu until here.
		o.mu.Unlock()
		return
	}
	o.mu.Unlock()
	func() {
		defer o.recover()
		for {
			resp := o.responses(o.ctx)
			if resp == nil {
				break
			}
			o.c.sendResponse(o.id, resp)
		}
	}()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.end()
}

// next takes what the stream has put in the subscription's channel: one
// response to send, or its end.
func (o *wsOperation) next() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ended {
		return
	}
	defer o.recover()
	if event := o.pull.Event(); event != "" && o.share != nil {
		o.nextShared(event)
		return
	}
	if !o.pull.Fill() {
		return // the stream ends with the error
	}
	resp := o.responses(o.ctx)
	if resp == nil {
		o.end()
		return
	}
	o.c.t.shares.count(false)
	o.c.sendNext(o.id, encodeResponse(resp))
}

// nextShared is next for an event of a subscription in a group: the
// response the group computed for it, else one of its own, which the
// group gets if it is shareable (o.mu held).
func (o *wsOperation) nextShared(event string) {
	if o.ctx.Err() != nil {
		// Ended (as the response handler would find).
		o.end()
		return
	}
	g := o.share // o.end forgets it
	e, first := g.claim(event)
	if !first {
		<-e.done
		if o.ctx.Err() != nil {
			o.end()
			return
		}
		if e.payload != nil {
			o.pull.Drop()
			o.c.t.shares.count(true)
			o.c.sendNext(o.id, e.payload)
			return
		}
	}
	settled := !first
	defer func() {
		// Whatever happens (a panic too), those waiting are woken.
		if !settled {
			g.settle(e, nil)
		}
	}()
	if !o.pull.Fill() {
		return // the stream ends with the error (and the others')
	}
	check := &resolvers.ShareCheck{}
	resp := o.responses(resolvers.WithShareCheck(o.ctx, check))
	if resp == nil {
		o.end()
		return
	}
	b := encodeResponse(resp)
	if !settled {
		// Before the write, which a slow client may hold up.
		settled = true
		if shareable(resp) && check.Shareable() {
			g.settle(e, b)
		} else {
			g.settle(e, nil)
		}
	}
	o.c.t.shares.count(false)
	o.c.sendNext(o.id, b)
}

// recover turns a panic of the operation into its error message, which
// ends it (o.mu held).
func (o *wsOperation) recover() {
	r := recover()
	if r == nil {
		return
	}
	ctx := o.ctx
	if ctx == nil {
		ctx = o.c.ctx
	}
	err := o.rc.Recover(ctx, r)
	var gerr *gqlerror.Error
	if !errors.As(err, &gerr) {
		gerr = &gqlerror.Error{}
		if err != nil {
			gerr.Message = err.Error()
		}
	}
	o.c.sendError(o.id, gerr)
	o.ended = true
	o.finish()
}

// end completes the operation (o.mu held): complete for its id, unless the
// connection's context has ended.
func (o *wsOperation) end() {
	if o.ended {
		return
	}
	o.ended = true
	if o.c.ctx.Err() == nil {
		o.c.send("complete", o.id, nil)
	}
	o.finish()
}

// finish forgets the operation and releases its context.
func (o *wsOperation) finish() {
	if o.share != nil {
		o.c.t.shares.leave(o.share)
		o.share = nil
	}
	o.c.mu.Lock()
	if o.c.active[o.id] == o {
		delete(o.c.active, o.id)
	}
	o.c.mu.Unlock()
	o.cancel()
}

package web

import (
	"encoding/binary"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Coalesced websocket writes. A subscription's stream hands over the events
// that wait for it one after the other (streaming.Hub's watch), and each
// next message was a frame of its own, written with a write(2) of its own:
// with 1,000 subscribers of every order, 40–50 % of the gateway's CPU went
// to those system calls. Now a socket's frames go through wsOut, which
// holds the next messages of a pulled subscription (resolvers.Pull) in a
// buffer of the socket while its stream delivers, and writes them with one
// write(2) once the stream has delivered everything that waited
// (Pull.Idle, gorillaConn.flush) or the buffer passes wsHoldBytes. With
// one event waiting a message is written as soon as it is made, as before.
//
// Every other message (complete, error, connection_ack, pong, ka, a
// refusal, connection_error, and the responses of operations that are not
// pulled) writes what is held first and then itself at once, and so does
// a control frame (ping, pong, close), which gorilla writes through wsOut
// (it is the connection gorilla got from the hijack): the peer gets the
// bytes in the order they were made, as when each was written at once.
// The frames of data messages are made here (RFC 6455: unmasked, one
// final text frame per message, no compression, as gorilla made them);
// gorilla writes control frames only.

// wsHoldBytes bounds what a socket holds: past it, its frames are written.
const wsHoldBytes = 64 << 10

// wsWriteTimeout is the deadline of a write of data messages.
const wsWriteTimeout = 10 * time.Second

// wsOut is a websocket's connection as gorilla sees it: reads go straight
// to the connection, writes through a lock of the socket's, after what the
// socket holds (see above).
type wsOut struct {
	net.Conn
	// lock is held while pending changes or a write is under way (a
	// channel, so that a control frame waits for it only until its
	// deadline, as gorilla's own lock does).
	lock chan struct{}
	// pending holds the frames not written yet (nil when none: an idle
	// socket holds no buffer).
	pending *[]byte
	// err is the first write's error: the connection is of no more use.
	err error
	// closeSent: a close frame went out; data messages are refused
	// (websocket.ErrCloseSent) as gorilla refuses them.
	closeSent bool
	// deadline is gorilla's for its next Write (gorilla sets it and
	// writes under its own lock).
	deadline time.Time
	// writes counts the write(2) calls (tests), and metrics the messages
	// and writes (nil: not counted).
	writes  atomic.Int64
	metrics *wsWriteMetrics
}

// wsWriteMetrics count what the websockets write.
type wsWriteMetrics struct {
	messages, writes prometheus.Counter
}

func newWSOut(c net.Conn, m *wsWriteMetrics) *wsOut {
	return &wsOut{Conn: c, lock: make(chan struct{}, 1), metrics: m}
}

func (o *wsOut) acquire() { o.lock <- struct{}{} }
func (o *wsOut) release() { <-o.lock }

// acquireBy takes the lock, waiting no longer than deadline (zero: as long
// as it takes); false when the deadline passed.
func (o *wsOut) acquireBy(deadline time.Time) bool {
	if deadline.IsZero() {
		o.acquire()
		return true
	}
	select {
	case o.lock <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case o.lock <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// wsBuffers hold the frames of sockets that have some pending.
var wsBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxFrameHeader is the longest header of a server's frame.
const maxFrameHeader = 10

// message appends one text message, which body appends to the buffer it
// is given, and writes what the socket holds unless hold is set (and
// the socket holds less than wsHoldBytes): then the next message that is
// not held, a control frame or flush writes it.
func (o *wsOut) message(hold bool, body func([]byte) []byte) error {
	o.acquire()
	defer o.release()
	if o.err != nil {
		return o.err
	}
	if o.closeSent {
		return websocket.ErrCloseSent
	}
	if o.pending == nil {
		o.pending = wsBuffers.Get().(*[]byte)
	}
	b := *o.pending
	start := len(b)
	// The body goes after room for the longest header, and moves up to
	// its header once its length is known.
	b = body(append(b, make([]byte, maxFrameHeader)...))
	n := len(b) - start - maxFrameHeader
	h := 2
	switch {
	case n > 65535:
		h = 10
		b[start+1] = 127
		binary.BigEndian.PutUint64(b[start+2:], uint64(n))
	case n > 125:
		h = 4
		b[start+1] = 126
		binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	default:
		b[start+1] = byte(n)
	}
	b[start] = 0x80 | websocket.TextMessage // final, text
	copy(b[start+h:], b[start+maxFrameHeader:])
	*o.pending = b[:start+h+n]
	if o.metrics != nil {
		o.metrics.messages.Inc()
	}
	if hold && len(*o.pending) < wsHoldBytes {
		return nil
	}
	return o.write(time.Now().Add(wsWriteTimeout))
}

// flush writes what the socket holds.
func (o *wsOut) flush() error {
	o.acquire()
	defer o.release()
	if o.pending == nil {
		return o.err
	}
	return o.write(time.Now().Add(wsWriteTimeout))
}

// write writes the pending frames with one write(2) by deadline and
// releases their buffer (o.lock held).
func (o *wsOut) write(deadline time.Time) error {
	p := o.pending
	if p == nil {
		return o.err
	}
	o.pending = nil
	if len(*p) > 0 && o.err == nil {
		o.Conn.SetWriteDeadline(deadline)
		_, o.err = o.Conn.Write(*p)
		o.count()
	}
	if cap(*p) <= 4*wsHoldBytes {
		*p = (*p)[:0]
		wsBuffers.Put(p)
	}
	return o.err
}

func (o *wsOut) count() {
	o.writes.Add(1)
	if o.metrics != nil {
		o.metrics.writes.Inc()
	}
}

// SetWriteDeadline is gorilla's, for its next Write.
func (o *wsOut) SetWriteDeadline(t time.Time) error {
	o.deadline = t
	return nil
}

// Write is gorilla's: the upgrade's response, then control frames, each
// one frame in one Write.
func (o *wsOut) Write(p []byte) (int, error) {
	if err := o.writeFrame(p, o.deadline); err != nil {
		return 0, err
	}
	return len(p), nil
}

// pong answers a ping (the connection's ping handler). As gorilla's own
// handler, it gives up without failing the connection when the socket's
// writes do not let it through within a second or a close frame went out.
func (o *wsOut) pong(data string) error {
	frame := append([]byte{0x80 | websocket.PongMessage, byte(len(data))}, data...)
	err := o.writeFrame(frame, time.Now().Add(time.Second))
	if err == os.ErrDeadlineExceeded || err == websocket.ErrCloseSent {
		return nil
	}
	return err
}

// writeFrame writes a control frame (or the upgrade's response) by
// deadline. What the socket holds goes first, in the same write(2); those
// data frames keep their own deadline then (wsWriteTimeout) when it is
// later than the control frame's. Waiting for the socket's other writes
// ends at the deadline too (os.ErrDeadlineExceeded: nothing was written).
func (o *wsOut) writeFrame(p []byte, deadline time.Time) error {
	if !o.acquireBy(deadline) {
		return os.ErrDeadlineExceeded
	}
	defer o.release()
	if o.err != nil {
		return o.err
	}
	if o.closeSent {
		return websocket.ErrCloseSent
	}
	if len(p) > 0 && p[0] == 0x80|websocket.CloseMessage {
		o.closeSent = true
	}
	if o.pending != nil && len(*o.pending) > 0 {
		*o.pending = append(*o.pending, p...)
		if d := time.Now().Add(wsWriteTimeout); !deadline.IsZero() && deadline.Before(d) {
			deadline = d
		}
		return o.write(deadline)
	}
	o.Conn.SetWriteDeadline(deadline)
	_, o.err = o.Conn.Write(p)
	o.count()
	return o.err
}

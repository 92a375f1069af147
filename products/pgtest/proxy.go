package pgtest

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Proxy is a TCP proxy between a test's stores and the PostgreSQL server
// that the test can cut (every session broken, new ones refused) and
// restore, making a store unreachable without touching the shared server.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	conns   map[net.Conn]struct{}
	clients map[net.Conn]bool // the conns that are the stores' side
}

// NewProxy listens on a free loopback port and forwards to the host:port
// of MESHGATE_TEST_POSTGRES (see Base for when it skips or fails). It is
// closed when t ends.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	u, err := url.Parse(Base(t))
	if err != nil {
		t.Fatalf("pgtest: %s is not a URL: %v", Env, err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, clients: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	return p
}

// DSN returns dsn (a postgres:// URL) pointed at the proxy.
func (p *Proxy) DSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		panic("pgtest: not a URL: " + err.Error())
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// Cut breaks every proxied session and refuses new ones (they are accepted
// and closed at once) until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Break breaks every proxied session, as a server restart does, and lets
// new ones through.
func (p *Proxy) Break() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	clear(p.clients)
}

// AdminShutdown ends every proxied session as PostgreSQL's shutdown does:
// the store's side gets a FATAL error 57P01 (admin_shutdown) and the
// connection closes; new sessions get through. The sessions must be idle
// (no statement running), as the pool's are between statements.
func (p *Proxy) AdminShutdown() {
	msg := []byte("SFATAL\x00VFATAL\x00C57P01\x00Mterminating connection due to administrator command\x00\x00")
	frame := append([]byte{'E', 0, 0, 0, 0}, msg...)
	binary.BigEndian.PutUint32(frame[1:5], uint32(4+len(msg)))
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if p.clients[c] {
			c.Write(frame)
		}
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	clear(p.clients)
}

// Restore lets sessions through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		c.Close()
		s.Close()
		return
	}
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.clients[c] = true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		io.Copy(dst, src)
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
	<-done
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	delete(p.clients, c)
	p.mu.Unlock()
}

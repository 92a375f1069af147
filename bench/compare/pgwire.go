package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
)

// statement is one SQL statement a client sent through the capture proxy,
// with its parameters (extended protocol) and the rows it returned (text
// format only; binary columns are kept as nil).
type statement struct {
	Conn   int
	At     time.Time
	SQL    string
	Params []*string // nil element: NULL
	Binary bool      // some parameter was sent in binary format
	Cols   []string  // names of the returned columns
	Path   string    // search_path the connection asked for at startup
	Rows   [][]*string
}

// Literal returns the statement with its $n parameters written as SQL
// literals, as pgbench must replay it.
func (s statement) Literal() (string, error) {
	if len(s.Params) == 0 {
		return s.SQL, nil
	}
	if s.Binary {
		return "", fmt.Errorf("statement %q has binary parameters; the capture can only replay text parameters", s.SQL)
	}
	var b strings.Builder
	sql := s.SQL
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		if c == '\'' { // copy a string literal whole
			j := i + 1
			for j < len(sql) && !(sql[j] == '\'' && (j+1 >= len(sql) || sql[j+1] != '\'')) {
				if sql[j] == '\'' {
					j++
				}
				j++
			}
			b.WriteString(sql[i:min(j+1, len(sql))])
			i = j
			continue
		}
		if c == '$' && i+1 < len(sql) && sql[i+1] >= '0' && sql[i+1] <= '9' {
			j := i + 1
			n := 0
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				n = n*10 + int(sql[j]-'0')
				j++
			}
			if n < 1 || n > len(s.Params) {
				return "", fmt.Errorf("statement %q refers to $%d of %d parameters", s.SQL, n, len(s.Params))
			}
			if p := s.Params[n-1]; p == nil {
				b.WriteString("NULL")
			} else {
				b.WriteString("'" + strings.ReplaceAll(*p, "'", "''") + "'")
			}
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

// wireProxy is a PostgreSQL protocol proxy on loopback that records the
// statements its clients send (simple and extended protocol) and the rows
// they get back, and counts the sessions opened through it. It is used only
// while capturing, never while timing. Close stops it and its connections.
type wireProxy struct {
	ln       net.Listener
	upstream string

	mu       sync.Mutex
	stmts    []statement
	sessions int
	conns    map[net.Conn]bool
	paths    map[int]string // search_path per connection
	wg       sync.WaitGroup
}

func startWireProxy(upstream string) (*wireProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &wireProxy{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}, paths: map[int]string{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the host:port clients connect to.
func (p *wireProxy) Addr() string { return p.ln.Addr().String() }

// Mark returns the position of the next statement, for Since.
func (p *wireProxy) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.stmts)
}

// Since returns the statements recorded after mark.
func (p *wireProxy) Since(mark int) []statement {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]statement(nil), p.stmts[mark:]...)
}

// Sessions returns how many client connections were opened so far.
func (p *wireProxy) Sessions() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sessions
}

// Close stops accepting, closes every proxied connection and waits.
func (p *wireProxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *wireProxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		if p.conns == nil {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *wireProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.sessions++
		id := p.sessions
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(id, c)
		}()
	}
}

func (p *wireProxy) serve(id int, client net.Conn) {
	defer client.Close()
	server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		return
	}
	defer server.Close()
	p.track(client, true)
	p.track(server, true)
	defer p.track(client, false)
	defer p.track(server, false)

	cr := bufio.NewReader(client)
	// Startup: SSLRequest/GSSENCRequest are refused (loopback, sslmode=disable),
	// then the startup message goes through untouched.
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(cr, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		code := binary.BigEndian.Uint32(hdr[4:])
		if n < 8 || n > 1<<20 {
			return
		}
		rest := make([]byte, n-8)
		if _, err := io.ReadFull(cr, rest); err != nil {
			return
		}
		if code == 80877103 || code == 80877104 {
			if _, err := client.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		}
		if _, err := server.Write(append(hdr[:], rest...)); err != nil {
			return
		}
		for kv := rest; len(kv) > 0; {
			var k, v string
			k, kv = cstring(kv)
			v, kv = cstring(kv)
			if k == "search_path" {
				p.mu.Lock()
				p.paths[id] = v
				p.mu.Unlock()
			}
		}
		break
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.pumpServer(id, bufio.NewReader(server), client)
		client.Close()
	}()
	p.pumpClient(id, cr, server)
	server.Close()
	<-done
}

func readMsg(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > 1<<30 {
		return 0, nil, errors.New("bad message length")
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

func writeMsg(w io.Writer, t byte, body []byte) error {
	var hdr [5]byte
	hdr[0] = t
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)+4))
	_, err := w.Write(append(hdr[:], body...))
	return err
}

func cstring(b []byte) (string, []byte) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:]
		}
	}
	return string(b), nil
}

var setPath = regexp.MustCompile(`(?i)^\s*SET\s+(?:SESSION\s+)?search_path\s*(?:TO|=)\s*(.+?)\s*;?\s*$`)

func (p *wireProxy) record(s statement) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := setPath.FindStringSubmatch(s.SQL); m != nil {
		p.paths[s.Conn] = strings.Trim(m[1], `'"`)
	}
	s.Path = p.paths[s.Conn]
	p.stmts = append(p.stmts, s)
}

func (p *wireProxy) pumpClient(id int, r *bufio.Reader, w net.Conn) {
	prepared := map[string]string{}
	for {
		t, body, err := readMsg(r)
		if err != nil {
			return
		}
		switch t {
		case 'Q':
			sql, _ := cstring(body)
			p.record(statement{Conn: id, At: time.Now(), SQL: sql})
		case 'P':
			name, rest := cstring(body)
			sql, _ := cstring(rest)
			prepared[name] = sql
		case 'B':
			if s, ok := parseBind(id, body, prepared); ok {
				p.record(s)
			}
		}
		if err := writeMsg(w, t, body); err != nil {
			return
		}
	}
}

func parseBind(id int, body []byte, prepared map[string]string) (statement, bool) {
	_, rest := cstring(body)
	name, rest := cstring(rest)
	s := statement{Conn: id, At: time.Now(), SQL: prepared[name]}
	if len(rest) < 2 {
		return s, false
	}
	nf := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	formats := make([]uint16, nf)
	for i := range nf {
		if len(rest) < 2 {
			return s, false
		}
		formats[i] = binary.BigEndian.Uint16(rest)
		rest = rest[2:]
	}
	if len(rest) < 2 {
		return s, false
	}
	np := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	for i := range np {
		if len(rest) < 4 {
			return s, false
		}
		n := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if n < 0 {
			s.Params = append(s.Params, nil)
			continue
		}
		if int(n) > len(rest) {
			return s, false
		}
		v := string(rest[:n])
		rest = rest[n:]
		f := uint16(0)
		if nf == 1 {
			f = formats[0]
		} else if i < nf {
			f = formats[i]
		}
		if f == 1 {
			s.Binary = true
		}
		s.Params = append(s.Params, &v)
	}
	return s, true
}

func (p *wireProxy) pumpServer(id int, r *bufio.Reader, w net.Conn) {
	for {
		t, body, err := readMsg(r)
		if err != nil {
			return
		}
		switch t {
		case 'D':
			p.addRow(id, body)
		case 'T':
			p.addCols(id, body)
		}
		if err := writeMsg(w, t, body); err != nil {
			return
		}
	}
}

// addRow attaches a data row to the connection's last statement.
func (p *wireProxy) addRow(id int, body []byte) {
	if len(body) < 2 {
		return
	}
	n := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	row := make([]*string, 0, n)
	for range n {
		if len(rest) < 4 {
			return
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l < 0 {
			row = append(row, nil)
			continue
		}
		v := string(rest[:l])
		rest = rest[l:]
		row = append(row, &v)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.stmts) - 1; i >= 0; i-- {
		if p.stmts[i].Conn == id {
			if len(p.stmts[i].Rows) < 100 {
				p.stmts[i].Rows = append(p.stmts[i].Rows, row)
			}
			return
		}
	}
}

// addCols attaches the column names of a row description to the
// connection's last statement.
func (p *wireProxy) addCols(id int, body []byte) {
	if len(body) < 2 {
		return
	}
	n := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	var cols []string
	for range n {
		name, r := cstring(rest)
		if len(r) < 18 {
			return
		}
		cols = append(cols, name)
		rest = r[18:]
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.stmts) - 1; i >= 0; i-- {
		if p.stmts[i].Conn == id {
			p.stmts[i].Cols = cols
			return
		}
	}
}

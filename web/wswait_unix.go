//go:build unix

package web

import "syscall"

// wait returns once the client has sent something (or the connection
// fails, or its read deadline passes: next then reports it). It waits in the
// network poller a few frames deep, where gorilla's read would wait under a
// dozen more: the stack of an idle socket's read loop shrinks to the least
// the runtime keeps (2 KiB) instead of 8 KiB. Without a descriptor to wait
// on (not a TCP connection), it returns at once and next waits.
func (g *gorillaConn) wait() {
	if g.raw == nil || g.br == nil || g.br.Buffered() > 0 {
		return
	}
	var peek [1]byte
	g.raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read yet: wait for the poller. Anything else (data,
		// the end of the stream, an error) is next's to read.
		return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
	})
}

//go:build !unix

package web

// wait returns at once where there is no MSG_PEEK to wait with (see the
// unix version): next waits in gorilla's read.
func (g *gorillaConn) wait() {}

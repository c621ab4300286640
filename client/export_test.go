package client

import "github.com/sensehq/sense/edge/native/wire"

// SetCutAnswer makes c drop a frame from the server, and cut the
// connection (over QUIC, the stream) that carried it, whenever cut returns
// true: the request was served, its answer is lost. nil turns it off.
func SetCutAnswer(c *Client, cut func(wire.Frame) bool) {
	if cut == nil {
		c.cutAnswer.Store(nil)
		return
	}
	c.cutAnswer.Store(&cut)
}

// Flows returns how many producer and consumer streams c has open (QUIC).
func Flows(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.flows)
}

// SetCutHTTPAnswer makes c, over HTTP, lose the answer of a produce
// request whenever cut returns true: the request was served, the client
// sees a broken answer. nil turns it off.
func SetCutHTTPAnswer(c *Client, cut func() bool) {
	if cut == nil {
		c.h.cut.Store(nil)
		return
	}
	c.h.cut.Store(&cut)
}

// Package httpfault injects network faults into HTTP responses, for tests
// that put a proxy in front of a real (fake) storage server and check that
// readers survive downloads cut short, and writers uploads whose response
// is lost.
package httpfault

import (
	"errors"
	"net/http"
	"strconv"
)

// ErrCut is what a cut writer reports once it has dropped the connection,
// which makes a reverse proxy abort the response.
var ErrCut = errors.New("connection cut by fault injection")

// CutHalf wraps w so that a successful response passes until half of its
// declared Content-Length is written; then the half is flushed to the
// client, onCut (if not nil) runs while the client still waits for the
// rest, so that its retry cannot overtake it, and the connection is closed
// under the client. Responses without a length, or not 2xx, pass whole.
func CutHalf(w http.ResponseWriter, onCut func()) http.ResponseWriter {
	return &cuttingWriter{ResponseWriter: w, limit: -1, onCut: onCut}
}

type cuttingWriter struct {
	http.ResponseWriter
	limit   int64 // bytes to let through; -1 for no limit
	written int64
	onCut   func()
}

func (c *cuttingWriter) WriteHeader(code int) {
	if n, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64); err == nil && n > 0 && code/100 == 2 {
		c.limit = n / 2
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *cuttingWriter) Write(b []byte) (int, error) {
	if c.limit < 0 || c.written+int64(len(b)) <= c.limit {
		n, err := c.ResponseWriter.Write(b)
		c.written += int64(n)
		return n, err
	}
	n, _ := c.ResponseWriter.Write(b[:c.limit-c.written])
	c.written += int64(n)
	rc := http.NewResponseController(c.ResponseWriter)
	rc.Flush()
	if c.onCut != nil {
		c.onCut()
	}
	if conn, _, err := rc.Hijack(); err == nil {
		conn.Close()
	}
	return n, ErrCut
}

// Unwrap lets http.ResponseController reach the server's writer.
func (c *cuttingWriter) Unwrap() http.ResponseWriter {
	return c.ResponseWriter
}

package httpfault

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// LoseResponses is an http.Handler in front of a Cloud Storage server that
// forwards every request, but for uploads of armed object names answers the
// client with a failure after the upload has landed: the lost response that
// a client's retry must cope with, since the write it repeats is already
// done.
//
// It knows the JSON API's uploads: simple and multipart ones, which land
// with their one request, and resumable ones, which land with the request
// that sends their last chunk; that request must come through LoseResponses
// too, as it does when the backend is a fake server's handler
// (fakestorage.Server.HTTPHandler), which builds session URIs from the
// request's host. A response is lost by answering 503 Service Unavailable,
// or by cutting the connection.
type LoseResponses struct {
	backend http.Handler
	cut     bool

	mu    sync.Mutex
	armed map[string]int // object name: successful uploads still to lose
	lost  int
}

// NewLoseResponses returns a LoseResponses that forwards requests to
// backend and loses a response by answering 503 Service Unavailable, or,
// if cut is true, by closing the connection without an answer. It loses
// nothing until armed.
func NewLoseResponses(backend http.Handler, cut bool) *LoseResponses {
	return &LoseResponses{backend: backend, cut: cut, armed: map[string]int{}}
}

// Arm makes l lose the response to the next successful upload of object,
// named without its bucket (in any bucket). Each call loses one more
// response.
func (l *LoseResponses) Arm(object string) {
	l.mu.Lock()
	l.armed[object]++
	l.mu.Unlock()
}

// Lost returns the number of responses lost so far.
func (l *LoseResponses) Lost() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// ServeHTTP forwards r to the backend. If r completes an upload of an
// armed object and succeeds, the client is answered with the failure
// instead of the backend's response.
func (l *LoseResponses) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := uploadName(r)
	l.mu.Lock()
	watched := ok && l.armed[name] > 0
	l.mu.Unlock()
	if !watched {
		l.backend.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	l.backend.ServeHTTP(rec, r)
	// A resumable chunk that is not the last is answered 200 with this
	// header to a client that asked not to see 308 Permanent Redirect.
	landed := rec.Code/100 == 2 && rec.Header().Get("X-Http-Status-Code-Override") != "308"
	l.mu.Lock()
	lose := landed && l.armed[name] > 0
	if lose {
		l.armed[name]--
		l.lost++
	}
	l.mu.Unlock()
	switch {
	case lose && l.cut:
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
	case lose:
		http.Error(w, "injected fault: response lost", http.StatusServiceUnavailable)
	default:
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}
}

// uploadName returns the name of the object whose upload r may complete:
// a simple or multipart upload, or a chunk of a resumable one, but not the
// request that starts a resumable session, which stores nothing. The name
// is in the query of simple uploads and of the session URIs of resumable
// ones, and in the metadata part of the body of multipart uploads; a body
// read to find it is put back for forwarding.
func uploadName(r *http.Request) (string, bool) {
	if !strings.HasPrefix(r.URL.Path, "/upload/") || r.Method != http.MethodPost && r.Method != http.MethodPut {
		return "", false
	}
	q := r.URL.Query()
	if q.Get("uploadType") == "resumable" && !q.Has("upload_id") {
		return "", false
	}
	if name := q.Get("name"); name != "" {
		return name, true
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") {
		return "", false
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return "", false
	}
	part, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).NextPart()
	if err != nil {
		return "", false
	}
	var meta struct{ Name string }
	if err := json.NewDecoder(part).Decode(&meta); err != nil || meta.Name == "" {
		return "", false
	}
	return meta.Name, true
}

package h1

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of one request on the request
// loop. The head's fields are serialized when the handler calls
// WriteHeader, as net/http snapshots them; the framing (Content-Length
// or chunked), Date and a sniffed Content-Type are added when the head
// goes out: at the first Write or Flush, or when the handler returns.
type response struct {
	bw  *bufio.Writer
	req *http.Request

	header  http.Header
	status  int          // 0 until WriteHeader
	fields  bytes.Buffer // the handler's header lines, from WriteHeader
	sniff   bool         // no Content-Type: sniff the first write
	sent    bool         // the head was written to bw
	noBody  bool         // HEAD, 204, 304: no body bytes go out
	chunked bool
	length  int64 // the declared Content-Length, -1 for none
	written int64 // body bytes written
	close   bool  // the handler said Connection: close
	err     error // the first write error; every later write fails
}

// reset readies rw for request r, keeping its buffers.
func (rw *response) reset(r *http.Request) {
	// the header map is reused too: unlike with net/http, which makes a
	// new one for each request, a handler must not touch it after it
	// returned
	h := rw.header
	if h == nil {
		h = make(http.Header)
	}
	clear(h)
	*rw = response{bw: rw.bw, req: r, header: h, fields: rw.fields, length: -1}
	rw.fields.Reset()
}

func (rw *response) Header() http.Header { return rw.header }

// excluded are the header fields the response writer decides itself.
var excluded = map[string]bool{
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Date":              true,
	"Connection":        true,
}

// writeFields writes the fields of h but the excluded ones, as net/http's
// server writes a handler's header: a name that is not valid is dropped,
// CR and LF in a value become spaces (a handler cannot split the
// answer), and values are trimmed. Fields come in map order, not sorted:
// only the order of one field's values carries meaning.
func writeFields(w io.StringWriter, h http.Header) {
	for k, vs := range h {
		if excluded[k] || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				v = newlineToSpace.Replace(v)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(textproto.TrimString(v))
			w.WriteString("\r\n")
		}
	}
}

var newlineToSpace = strings.NewReplacer("\n", " ", "\r", " ")

func (rw *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if rw.status != 0 {
		return
	}
	h := rw.header
	if code < 200 {
		// an informational answer goes out now, and the handler goes on
		if code != http.StatusSwitchingProtocols && rw.err == nil {
			writeStatusLine(rw.bw, code)
			writeFields(rw.bw, h)
			rw.bw.WriteString("\r\n")
			rw.err = rw.bw.Flush()
		}
		return
	}
	rw.status = code
	rw.noBody = rw.req.Method == http.MethodHead || !bodyAllowed(code)
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			rw.length = n
		}
	}
	for _, v := range h["Connection"] {
		if strings.EqualFold(strings.TrimSpace(v), "close") {
			rw.close = true
		}
	}
	_, hasType := h["Content-Type"]
	rw.sniff = !hasType && bodyAllowed(code)
	writeFields(&rw.fields, h)
}

func (rw *response) Write(p []byte) (int, error) {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.err != nil {
		return 0, rw.err
	}
	if !bodyAllowed(rw.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if rw.length >= 0 && rw.written+int64(len(p)) > rw.length {
		return 0, http.ErrContentLength
	}
	if !rw.sent {
		if rw.sniff {
			rw.fields.WriteString("Content-Type: " + http.DetectContentType(p) + "\r\n")
		}
		rw.sendHead(false)
	}
	rw.written += int64(len(p))
	if rw.noBody {
		// HEAD: the body is counted, not sent
		return len(p), nil
	}
	if rw.chunked {
		fmt.Fprintf(rw.bw, "%x\r\n", len(p))
	}
	n, err := rw.bw.Write(p)
	if rw.chunked && err == nil {
		_, err = rw.bw.WriteString("\r\n")
	}
	if err != nil {
		rw.err = err
	}
	return n, err
}

// sendHead writes the status line and the header to bw. done tells that
// the handler returned: a response with no body written and no length
// of its own then says Content-Length: 0.
func (rw *response) sendHead(done bool) {
	rw.sent = true
	bw := rw.bw
	writeStatusLine(bw, rw.status)
	bw.Write(rw.fields.Bytes())
	if _, ok := rw.header["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	} else if d := rw.header.Get("Date"); d != "" {
		bw.WriteString("Date: " + d + "\r\n")
	}
	switch {
	case rw.length >= 0 && rw.status != http.StatusNoContent:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(rw.length, 10))
		bw.WriteString("\r\n")
	case rw.noBody:
	case done && !rw.hasTrailers():
		rw.length = 0
		bw.WriteString("Content-Length: 0\r\n")
	default:
		rw.chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if rw.close || rw.req.Close {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

func (rw *response) hasTrailers() bool {
	if len(rw.header["Trailer"]) > 0 {
		return true
	}
	for k := range rw.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

// Flush sends what was written so far.
func (rw *response) Flush() { rw.FlushError() }

// FlushError is Flush for http.ResponseController.
func (rw *response) FlushError() error {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.err != nil {
		return rw.err
	}
	if !rw.sent {
		rw.sendHead(false)
	}
	if err := rw.bw.Flush(); err != nil {
		rw.err = err
	}
	return rw.err
}

// finish completes the response after the handler returned, and reports
// whether the connection can carry another request.
func (rw *response) finish() bool {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.err != nil {
		return false
	}
	if !rw.sent {
		rw.sendHead(true)
	}
	keep := !rw.close
	switch {
	case rw.chunked:
		rw.bw.WriteString("0\r\n")
		rw.writeTrailers()
		rw.bw.WriteString("\r\n")
	case rw.length >= 0 && !rw.noBody && rw.written < rw.length:
		// the answer is shorter than it said: the client can only tell
		// by the connection closing
		keep = false
	}
	if err := rw.bw.Flush(); err != nil {
		return false
	}
	return keep
}

// writeTrailers writes the trailer fields the handler announced in its
// Trailer header, and those it set with http.TrailerPrefix.
func (rw *response) writeTrailers() {
	t := http.Header{}
	for _, v := range rw.header["Trailer"] {
		for k := range strings.SplitSeq(v, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			if vs, ok := rw.header[k]; ok && k != "" {
				t[k] = vs
			}
		}
	}
	for k, vs := range rw.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			t[http.CanonicalHeaderKey(name)] = vs
		}
	}
	writeFields(rw.bw, t)
}

// bodyAllowed reports whether a response with status may have a body
// (RFC 9110, 6.4.1).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func writeStatusLine(bw *bufio.Writer, code int) {
	bw.WriteString("HTTP/1.1 ")
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

// date is the Date header's value, formatted once a second.
type date struct {
	unix int64
	text string
}

var lastDate atomic.Pointer[date]

func httpDate() string {
	now := time.Now()
	if d := lastDate.Load(); d != nil && d.unix == now.Unix() {
		return d.text
	}
	d := &date{unix: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	lastDate.Store(d)
	return d.text
}

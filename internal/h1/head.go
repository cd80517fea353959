package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// The parsers here take the plainest heads only, strictly: CRLF line
// ends, no folded lines, valid field names and values. They say no to
// anything else, and the caller hands such a head to net/http's parser,
// which knows every form HTTP/1 allows. What they do take they parse as
// net/http would, field for field, with a few allocations per head
// instead of one or more per field: the head becomes one string, and
// names and values are slices of it.

// parseFields parses the header fields of a head: s runs from just after
// the head's first line up to and with the empty line that ends it.
// Names are canonicalized as net/http does; values are trimmed.
func parseFields(s string) (http.Header, bool) {
	n := strings.Count(s, "\n") - 1 // lines, without the empty one
	if n < 0 {
		return nil, false
	}
	h := make(http.Header, n)
	values := make([]string, n)
	for i := 0; ; i++ {
		line, rest, ok := cutLine(s)
		if !ok {
			return nil, false
		}
		s = rest
		if line == "" {
			return h, s == "" && i == n
		}
		if i == n {
			return nil, false // no empty line at the end
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !httpguts.ValidHeaderFieldName(name) {
			// a folded line starts with a space, which no name holds
			return nil, false
		}
		value = strings.Trim(value, " \t")
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, false
		}
		if !canonical(name) {
			name = http.CanonicalHeaderKey(name)
		}
		values[i] = value
		if vs, ok := h[name]; ok {
			h[name] = append(vs, value)
		} else {
			// capped, so that adding to one field never writes into the next
			h[name] = values[i : i+1 : i+1]
		}
	}
}

// cutLine cuts the first line off s. It must end in CRLF, and hold no
// other CR.
func cutLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\n')
	if i < 1 || s[i-1] != '\r' || strings.IndexByte(s[:i-1], '\r') >= 0 {
		return "", "", false
	}
	return s[:i-1], s[i+1:], true
}

// canonical reports whether a valid field name is in net/http's
// canonical form: upper case at the start and after each '-', lower
// case elsewhere.
func canonical(name string) bool {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}

// parseRequest parses a request head (see readHead) into r and reports
// whether it is one this server takes: HTTP/1.1, GET or HEAD, a
// path in origin form, exactly one valid Host, no body (no
// Content-Length or Transfer-Encoding), no Upgrade or Expect. The
// request is what net/http's server hands a handler: Host moved from
// the header to r.Host, Pragma: no-cache read as Cache-Control, Close
// from Connection. Anything else is Fallback's to answer.
func parseRequest(head []byte, r *http.Request) bool {
	s := string(head)
	line, fields, ok := cutLine(s)
	if !ok {
		return false
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" ||
		(method != http.MethodGet && method != http.MethodHead) ||
		len(target) == 0 || target[0] != '/' {
		return false
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return false
	}
	h, ok := parseFields(fields)
	if !ok {
		return false
	}
	hosts := h["Host"]
	if len(hosts) != 1 || !httpguts.ValidHostHeader(hosts[0]) ||
		h["Content-Length"] != nil || h["Transfer-Encoding"] != nil ||
		h["Upgrade"] != nil || h["Expect"] != nil {
		return false
	}
	delete(h, "Host")
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" && h["Cache-Control"] == nil {
		h["Cache-Control"] = []string{"no-cache"}
	}
	*r = http.Request{
		Method:     method,
		URL:        u,
		Proto:      proto,
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Body:       http.NoBody,
		Host:       hosts[0],
		Close:      httpguts.HeaderValuesContainsToken(h["Connection"], "close"),
		RequestURI: target,
	}
	return true
}

// ErrHeadTooLarge is ReadResponse's error for a response head that does
// not fit in the reader's buffer.
var ErrHeadTooLarge = errors.New("response head too large")

// ReadResponse reads the response to req from br, as http.ReadResponse
// does, but limits its head to br's buffer and parses the plainest
// answers itself: HTTP/1.1, a final status (200 and up), and a single
// Content-Length, or no body at all because of the status (204, 304) or
// req's method (HEAD); no Transfer-Encoding. Any other answer, chunked,
// informational or read to the connection's end, goes to
// http.ReadResponse once its head is in the buffer.
func ReadResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	head, err := readHead(br)
	switch {
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err != nil:
		return nil, err
	case head == nil:
		return nil, fmt.Errorf("%w (over %d bytes)", ErrHeadTooLarge, br.Size())
	}
	r, ok := parseResponse(head, req)
	if !ok {
		return http.ReadResponse(br, req)
	}
	br.Discard(len(head))
	if r.body.n > 0 {
		r.body.br = br
		r.Body = &r.body
	} else {
		r.Body = http.NoBody
	}
	return &r.Response, nil
}

// parsedResponse is a parsed answer and its body, in one allocation.
type parsedResponse struct {
	http.Response
	body fixedBody
}

// parseResponse parses a response head for ReadResponse; ok is false
// when the answer is not of the plainest kind.
func parseResponse(head []byte, req *http.Request) (*parsedResponse, bool) {
	s := string(head)
	line, fields, ok := cutLine(s)
	if !ok {
		return nil, false
	}
	proto, status, ok := strings.Cut(line, " ")
	if !ok || proto != "HTTP/1.1" || len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return nil, false
	}
	code := 0
	for _, c := range []byte(status[:3]) {
		if c < '0' || c > '9' {
			return nil, false
		}
		code = 10*code + int(c-'0')
	}
	if code < 200 {
		return nil, false
	}
	h, ok := parseFields(fields)
	if !ok || h["Transfer-Encoding"] != nil {
		return nil, false
	}
	length := int64(-1)
	if cl := h["Content-Length"]; cl != nil {
		if len(cl) != 1 {
			return nil, false
		}
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil {
			return nil, false
		}
		length = int64(n)
	}
	r := &parsedResponse{Response: http.Response{
		Status:     status,
		StatusCode: code,
		Proto:      proto,
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Request:    req,
	}}
	switch {
	case req != nil && req.Method == http.MethodHead:
		r.ContentLength = length
	case code == http.StatusNoContent || code == http.StatusNotModified:
		r.ContentLength = 0
	case length < 0:
		// chunked or read to the end: net/http's
		return nil, false
	default:
		r.ContentLength = length
		r.body.n = length
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") {
		r.Close = true
		delete(h, "Connection")
	}
	return r, true
}

// fixedBody is a response body of a known length read from the
// connection's buffer. Its last bytes come with io.EOF; a connection
// that ends before is io.ErrUnexpectedEOF.
type fixedBody struct {
	br     *bufio.Reader
	n      int64 // bytes left
	closed bool
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		err = io.EOF
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close stops reading. What is left of the body stays unread: the
// connection can then carry no other answer.
func (b *fixedBody) Close() error {
	b.closed = true
	return nil
}

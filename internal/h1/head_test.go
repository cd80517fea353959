package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// requestHeads are request heads for the parser tests and the fuzzer's
// seeds: ones it takes and ones it must hand to net/http.
var requestHeads = []string{
	"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nUser-Agent: t\r\n\r\n",
	"HEAD /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n",
	"GET /a%2Fb/../c HTTP/1.1\r\nhost: h\r\nx-lower: 1\r\nX-UPPER: 2\r\nx_under: 3\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nX-Two: a\r\nX-Two: b\r\nx-two: c\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nX-Pad: \t  v  \t\r\nX-Empty:\r\nX-Colon: a:b\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nCache-Control: max-age=1\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nCookie: a=1; b=2\r\nCookie: c=3\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
	// handed to net/http
	"GET /a HTTP/1.1\nHost: h\n\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n",
	"GET /a HTTP/1.0\r\nHost: h\r\n\r\n",
	"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
	"GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a HTTP/1.1\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nX (y): 1\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nX-Y: a\x00b\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nX-Y: a\rb\r\n\r\n",
	"GET /0 HTTP/1.1\r\nhost:\r\r\n\r\n",
	"GET /a HTTP/1.1\n\r\nHost: h\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nX-Y : 1\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\n: empty\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
	"GET  /a HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a  HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a%zz HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\n",
}

// serverRequest parses head as net/http's server does before it runs a
// handler.
func serverRequest(head string) (*http.Request, error) {
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		return nil, err
	}
	delete(r.Header, "Host")
	return r, nil
}

// checkRequest fails when parseRequest takes a head that net/http would
// read differently, or not at all.
func checkRequest(t *testing.T, head string) (taken bool) {
	t.Helper()
	// parseRequest sees heads as readHead cuts them
	end := headEnd([]byte(head))
	if end == 0 {
		return false
	}
	head = head[:end]
	got := new(http.Request)
	if !parseRequest([]byte(head), got) {
		return false
	}
	want, err := serverRequest(head)
	if err != nil {
		t.Fatalf("parseRequest took %q, which net/http refuses: %v", head, err)
	}
	if got.Method != want.Method || got.RequestURI != want.RequestURI ||
		got.URL.String() != want.URL.String() || got.URL.RawPath != want.URL.RawPath ||
		got.Host != want.Host || got.Close != want.Close || got.Proto != want.Proto ||
		got.ProtoMajor != want.ProtoMajor || got.ProtoMinor != want.ProtoMinor ||
		got.ContentLength != want.ContentLength || len(got.TransferEncoding) != 0 {
		t.Fatalf("%q:\ngot  %s %s (%s) host %q close %v length %d\nwant %s %s (%s) host %q close %v length %d",
			head, got.Method, got.RequestURI, got.URL, got.Host, got.Close, got.ContentLength,
			want.Method, want.RequestURI, want.URL, want.Host, want.Close, want.ContentLength)
	}
	if !reflect.DeepEqual(got.Header, want.Header) {
		t.Fatalf("%q:\ngot header  %q\nwant header %q", head, got.Header, want.Header)
	}
	if n, _ := got.Body.Read(make([]byte, 1)); n != 0 {
		t.Fatalf("%q: the request has a body", head)
	}
	return true
}

func TestParseRequest(t *testing.T) {
	taken := 0
	for _, head := range requestHeads {
		if checkRequest(t, head) {
			taken++
		}
	}
	// the first eleven are plain, and the last (a head with the next
	// request behind it); the rest are net/http's
	if taken != 12 {
		t.Errorf("parseRequest took %d of the heads, want 12", taken)
	}

	// fields without the empty line that ends a head are refused
	if _, ok := parseFields("A: 1\r\nB: 2\r\n"); ok {
		t.Error("parseFields took fields with no empty line after them")
	}

	// a field added to a parsed header must not change the next field
	r := new(http.Request)
	parseRequest([]byte("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n"), r)
	r.Header["A"] = append(r.Header["A"], "x")
	if b := r.Header["B"]; len(b) != 1 || b[0] != "2" {
		t.Errorf("appending to A changed B to %q", b)
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, head := range requestHeads {
		f.Add(head)
	}
	f.Fuzz(func(t *testing.T, head string) { checkRequest(t, head) })
}

// responseAnswers are answers for the parser tests and the fuzzer's
// seeds, each with the method of its request.
var responseAnswers = []struct{ method, answer string }{
	{"GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"},
	{"GET", "HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nnot"},
	{"GET", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"},
	{"GET", "HTTP/1.1 299 Whatever it says\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nokEXTRA"},
	{"GET", "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"},
	{"GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nEtag: \"x\"\r\n\r\n"},
	{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"},
	{"HEAD", "HTTP/1.1 200 OK\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe"},
	// handed to http.ReadResponse
	{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\n\r\nread to the end"},
	{"GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\nok"},
	{"GET", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok"},
	{"HEAD", "HTTP/1.1 200 \n0\r\n\r\n"},
	{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\r\n\r\nok"},
	{"GET", "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok"},
	{"GET", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok"},
}

// checkResponse fails when ReadResponse reads an answer otherwise than
// http.ReadResponse: status, header, length, close, body and what is
// left on the connection after it.
func checkResponse(t *testing.T, method, answer string) {
	t.Helper()
	req := &http.Request{Method: method}
	read := func(f func(*bufio.Reader, *http.Request) (*http.Response, error)) (*http.Response, string, string, error) {
		br := bufio.NewReaderSize(strings.NewReader(answer), 4096)
		resp, err := f(br, req)
		if err != nil {
			return nil, "", "", err
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, "", "", err
		}
		rest, _ := io.ReadAll(br)
		return resp, string(body), string(rest), nil
	}
	want, wantBody, wantRest, wantErr := read(http.ReadResponse)
	got, gotBody, gotRest, gotErr := read(ReadResponse)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%q: got error %v, net/http's %v", answer, gotErr, wantErr)
	}
	if gotErr != nil {
		return
	}
	if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
		got.ContentLength != want.ContentLength || got.Close != want.Close ||
		!reflect.DeepEqual(got.Header, want.Header) || !reflect.DeepEqual(got.Trailer, want.Trailer) ||
		gotBody != wantBody || gotRest != wantRest {
		t.Fatalf("%q:\ngot  %q %q length %d close %v body %q rest %q trailer %q\nwant %q %q length %d close %v body %q rest %q trailer %q",
			answer, got.Status, got.Header, got.ContentLength, got.Close, gotBody, gotRest, got.Trailer,
			want.Status, want.Header, want.ContentLength, want.Close, wantBody, wantRest, want.Trailer)
	}
}

func TestReadResponse(t *testing.T) {
	for _, a := range responseAnswers {
		checkResponse(t, a.method, a.answer)
	}

	// the plain ones are parsed here
	plain := 0
	for _, a := range responseAnswers {
		head := []byte(a.answer)
		if end := headEnd(head); end > 0 {
			if _, ok := parseResponse(head[:end], &http.Request{Method: a.method}); ok {
				plain++
			}
		}
	}
	if plain != 10 {
		t.Errorf("parseResponse took %d of the answers, want the first 10", plain)
	}

	// a head larger than the buffer is refused, whoever would parse it
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("x", 4096) + "\r\nContent-Length: 0\r\n\r\n"
	if _, err := ReadResponse(bufio.NewReaderSize(strings.NewReader(big), 4096), nil); err == nil ||
		!strings.Contains(err.Error(), "too large") {
		t.Errorf("a head over the buffer: got %v, want ErrHeadTooLarge", err)
	}

	// a body cut short is an error, not a shorter body
	resp, err := ReadResponse(bufio.NewReader(strings.NewReader(
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != io.ErrUnexpectedEOF {
		t.Errorf("short body: got %v, want io.ErrUnexpectedEOF", err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 1)); err != http.ErrBodyReadAfterClose {
		t.Errorf("read after Close: got %v, want ErrBodyReadAfterClose", err)
	}

	// the last bytes come with io.EOF: no read more than needed
	resp, _ = ReadResponse(bufio.NewReader(bytes.NewReader([]byte(
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))), nil)
	if n, err := resp.Body.Read(make([]byte, 10)); n != 2 || err != io.EOF {
		t.Errorf("got %d, %v, want 2 bytes with io.EOF", n, err)
	}
}

func FuzzReadResponse(f *testing.F) {
	for _, a := range responseAnswers {
		f.Add(a.method == "HEAD", a.answer)
	}
	f.Fuzz(func(t *testing.T, head bool, answer string) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		checkResponse(t, method, answer)
	})
}

// FuzzParseFields feeds the field parser input that readHead did not cut:
// it must refuse what is not a whole block of fields, never panic.
func FuzzParseFields(f *testing.F) {
	for _, s := range []string{"A: 1\r\n\r\n", "A: 1\r\nB: 2\r\n", "\r\n", "", "A: 1\r\n\r\nB: 2\r\n\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := parseFields(s)
		if ok && !strings.HasSuffix(s, "\r\n\r\n") && s != "\r\n" {
			t.Fatalf("took %q, which does not end a head", s)
		}
		if ok && h == nil {
			t.Fatalf("took %q without a header", s)
		}
	})
}

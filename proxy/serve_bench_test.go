package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/studio-proxy/studio-proxy/internal/testenv"
)

// BenchmarkServe measures one signed-in, authorized GET through a whole
// replica (request loop, session, decision, lean forwarding) to a demo
// server, over one kept-alive connection. The client writes a fixed
// request and reads the answer with net/http's parser, and the demo
// server is net/http's: their share of the allocations is the same in
// every run, so a change in allocs/op is the proxy's. Run with
// -benchmem; the CPU figure is noisier than studio-proxy bench's.
func BenchmarkServe(b *testing.B) {
	env := testenv.Start(b, testenv.Options{})
	c := env.Login(b, "alice")
	env.StartServer(b, "alice", "alice")
	base, _ := url.Parse(env.Replicas[0].URL)
	var cookies []string
	for _, ck := range c.Jar.Cookies(base) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	req := "GET /servers/alice/api/contents HTTP/1.1\r\n" +
		"Host: " + base.Host + "\r\n" +
		"User-Agent: bench\r\n" +
		"Accept: application/json\r\n" +
		"Accept-Encoding: gzip, deflate\r\n" +
		"Cookie: " + strings.Join(cookies, "; ") + "\r\n\r\n"

	conn, err := net.Dial("tcp", base.Host)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func() {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("got %d, want 200", resp.StatusCode)
		}
	}
	get() // the session and the decision are cached from here on
	b.ReportAllocs()
	for b.Loop() {
		get()
	}
}

//go:build linux

package h1

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-accepted
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestRawIO holds RawIO's reads and writes to what a net.Conn does:
// data both ways, large writes that must wait for the peer, EOF,
// deadlines, a Close from another goroutine, and a peer that is gone.
func TestRawIO(t *testing.T) {
	a, b := tcpPair(t)
	ra, rb := RawIO(a), RawIO(b)
	if _, ok := ra.(*rawIO); !ok {
		t.Fatalf("RawIO of a TCP connection is %T, want *rawIO", ra)
	}

	// a write larger than the socket buffers waits for the reader
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	errc := make(chan error, 1)
	go func() {
		n, err := ra.Write(big)
		if err == nil && n != len(big) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(rb, got); err != nil {
		t.Fatalf("reading: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("writing: %v", err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("the bytes read are not the bytes written")
	}
	if n, err := ra.Write(nil); n != 0 || err != nil {
		t.Errorf("empty write: got %d, %v", n, err)
	}
	if n, err := rb.Read(nil); n != 0 || err != nil {
		t.Errorf("empty read: got %d, %v", n, err)
	}

	// a read deadline is the connection's, and a timeout as net's is
	b.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := rb.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past the deadline: got %v, want a timeout", err)
	}
	b.SetReadDeadline(time.Time{})

	// closing the connection ends a read in progress
	go func() {
		time.Sleep(50 * time.Millisecond)
		b.Close()
	}()
	if _, err := rb.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read on a connection closed meanwhile: got %v, want net.ErrClosed", err)
	}

	// the peer is gone: reads end with EOF, writes fail
	if _, err := ra.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read from a closed peer: got %v, want io.EOF", err)
	}
	var werr error
	for range 100 {
		if _, werr = ra.Write([]byte("x")); werr != nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if werr == nil {
		t.Error("writes to a closed peer kept succeeding")
	}

	// anything but a TCP connection is used as it is
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	if got := RawIO(p); got != p {
		t.Errorf("RawIO of a pipe is %T, want the pipe itself", got)
	}
}

package h1

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// RawIO returns the reads and writes of c done with raw system calls,
// for a TCP connection, and c itself for any other. Deadlines, Close and
// everything else stay c's.
//
// A socket of the Go runtime never blocks: a read or write that cannot
// go on returns EAGAIN, and the runtime parks the goroutine until the
// socket is ready (syscall.RawConn does that part here too). Still, the
// runtime enters every read and write as a system call that may block:
// it marks the processor as in a system call, wakes its monitor thread
// if that slept, and that thread hands the processor to another thread
// when the call takes longer than one of its ticks (20 µs), which a
// write on loopback that delivers the data to the receiver in the
// sender's call can. On a small machine that bookkeeping, the monitor's
// ticks and the thread switches it causes cost more than the calls. A
// raw call skips it, as it may for a call that cannot block.
func RawIO(c net.Conn) io.ReadWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawIO{rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

// rawIO is one connection's raw reads and writes. It is used by one
// reader and one writer at a time (each has its own buffer and result),
// as a bufio.Reader and a bufio.Writer use a connection.
type rawIO struct {
	rc syscall.RawConn

	// the calls' arguments and results, so that the callbacks, made
	// once, allocate nothing
	rp, wp  []byte
	rn, wn  int
	rerr    syscall.Errno
	werr    syscall.Errno
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rp = p
	err := r.rc.Read(r.readFn)
	r.rp = nil
	switch {
	case err != nil:
		return 0, err // a deadline or a closed connection
	case r.rerr != 0:
		return 0, os.NewSyscallError("read", r.rerr)
	case r.rn == 0:
		return 0, io.EOF
	}
	return r.rn, nil
}

func (r *rawIO) read(fd uintptr) bool {
	var ready bool
	r.rn, r.rerr, ready = rawCall(syscall.SYS_READ, fd, r.rp)
	return ready
}

func (r *rawIO) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		r.wp = p[written:]
		err := r.rc.Write(r.writeFn)
		r.wp = nil
		switch {
		case err != nil:
			return written, err
		case r.werr != 0:
			return written, os.NewSyscallError("write", r.werr)
		}
		written += r.wn
	}
	return written, nil
}

func (r *rawIO) write(fd uintptr) bool {
	var ready bool
	r.wn, r.werr, ready = rawCall(syscall.SYS_WRITE, fd, r.wp)
	return ready
}

// rawCall makes the read or write system call trap on fd with p, again
// after an interrupt. ready is false when the socket is not ready
// (EAGAIN): the caller's RawConn then waits until it is.
func rawCall(trap, fd uintptr, p []byte) (n int, errno syscall.Errno, ready bool) {
	for {
		r, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, 0, false
		}
		return int(r), e, true
	}
}

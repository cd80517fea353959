//go:build !linux

package h1

import (
	"io"
	"net"
)

// RawIO returns c: raw system calls are only used on Linux.
func RawIO(c net.Conn) io.ReadWriter { return c }

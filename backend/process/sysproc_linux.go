package process

import "syscall"

// sysProcAttr puts the server in its own process group, so that a stop
// reaches its children (kernels) too, and has Linux send it SIGTERM when
// the proxy dies, so that no server outlives the proxy that knows it.
//
// Pdeathsig fires when the thread that started the child ends; the Go
// runtime does not end its threads in normal operation.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

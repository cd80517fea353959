//go:build !linux

package process

import "syscall"

// sysProcAttr puts the server in its own process group, so that a stop
// reaches its children (kernels) too.
//
// TODO: outside Linux there is no parent-death signal, so a server outlives
// a proxy that crashed; the process driver is meant for Linux.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// Package backend knows the notebook servers behind the proxy: a registry
// in Redis of each server's owner, state, address and secret, and the
// Manager that starts and stops them through a Driver, safely when several
// proxy replicas ask at once. The drivers live beside it: backend/process
// runs servers as child processes on this machine, backend/k8s as pods.
// docs/backends.md describes the keys, states, lock and drivers.
package backend

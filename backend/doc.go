// Package backend knows the notebook servers behind the proxy: a registry
// in Redis of each server's owner, state, address and secret, and the
// lifecycle drivers that start and stop them (a local process driver; a
// Kubernetes driver lives in backend/k8s).
package backend

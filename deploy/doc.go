// Package deploy holds what installs studio-proxy: the container image
// build (Containerfile), Kubernetes manifests (kubernetes/) and a systemd
// unit for one machine (systemd/). It has no code; its tests parse every
// file and check the invariants docs/deploy.md promises, so a broken
// manifest fails the test suite.
package deploy

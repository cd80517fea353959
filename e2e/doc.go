// Package e2e holds end-to-end tests of a whole installation: the proxy,
// the Studio page, the development identity provider, a real Redis and
// real notebook servers, driven from headless chromium the way people use
// them. It has no code of its own, only tests. They need redis-server,
// chromium and Debian's jupyter-notebook; without them they are skipped,
// or fail when CI=true. Screenshots go to test-artifacts/screenshots/,
// named e2e-*.png.
package e2e

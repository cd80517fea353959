// Package devidp is an OpenID Connect provider for development and tests:
// a handful of built-in users, a plain username and password page, one
// confidential client, keys made at start, and everything kept in memory.
// It is built on github.com/zitadel/oidc/v3/pkg/op and refuses to serve
// anything but a loopback address unless told otherwise. It is not an
// identity provider for production.
package devidp

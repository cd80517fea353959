// Package authz is the share table: who may use which server. It keeps the
// user directory, the grants of each server and their reverse index in
// Redis, decides for a (user, server) pair, and publishes every change on
// the events channel and in a bounded audit stream.
package authz

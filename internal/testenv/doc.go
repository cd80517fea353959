// Package testenv starts a whole studio-proxy installation inside one
// test: a private redis-server, the development OpenID provider, proxy
// replicas that share the Redis (each with its own client, events
// subscriber and caches), and a lifecycle Driver that runs each server as
// a demo server on a loopback port. Login signs a client in through the
// real sign-in form. The proxy's integration tests use it, and so can the
// Studio's and the end-to-end tests:
//
//	env := testenv.Start(t, testenv.Options{Replicas: 2})
//	alice := env.Login(t, "alice")
//	resp, _ := alice.Get(env.ExternalURL + "/servers/alice/")
package testenv

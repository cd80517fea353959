// Package demoserver is a small stand-in for a notebook server: it serves
// HTTP and websockets under a base URL, requires the per-server secret the
// proxy adds ("Authorization: token <secret>"), and reports what reached
// it. The proxy's tests use it as their backend, and "studio-proxy dev"
// runs it when Jupyter is not installed.
//
// Every request under the base URL that is not a websocket upgrade gets a
// JSON Report: method, path, query, host, the X-Studio-User header and the
// other request headers (the Authorization header is never echoed). The
// base URL itself, asked for by a browser (Accept: text/html), gets a page
// with a websocket echo box instead.
//
// Every websocket upgrade under the base URL is an echo: text and binary
// messages come back as they were sent, the first subprotocol the client
// offers is accepted, and a close frame is answered with the same code.
// Two text messages are commands: "!whoami" answers with a JSON
// WhoAmI, and "!close <code> [reason]" makes the server close the
// connection with that code.
package demoserver

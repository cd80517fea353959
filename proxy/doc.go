// Package proxy is the HTTP app of one studio-proxy replica: it serves
// its own routes under a reserved prefix (sign-in, health, start and
// stop, the active server, the Studio page) and forwards every other
// request and websocket to the notebook server it names, once the person
// is signed in and allowed to use that server.
//
// Every request path is parsed once (parsePath): the same cleaned result
// decides and forwards. Decisions and server records are cached per
// replica and dropped by the events channel; open websockets and
// in-flight requests are tracked per (user, server, session) so that a
// revoke, a logout or a stopping server cuts them on every replica. See
// docs/proxy.md.
package proxy

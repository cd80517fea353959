// Package studio serves the Studio home page and its JSON API under the
// proxy's reserved prefix: the details of the active server, the share
// dialog, the servers shared with the signed-in user and the server
// switcher. The page is plain HTML, CSS and JavaScript modules embedded in
// the binary; it talks to the proxy only through the JSON API.
//
// The handler expects to run behind the session middleware (package
// session), which puts the signed-in user in the request context. Start,
// stop and the choice of the active server are served by package proxy;
// this package serves everything else the page needs.
package studio

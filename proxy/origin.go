package proxy

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// CSRFHeader must be sent, with the value "1", on every state-changing
// call of the JSON API. A foreign page cannot send a custom header
// without a CORS preflight, which the proxy never answers.
//
// TODO: a page served by a server shares the proxy's origin, so a script
// in it (a notebook's output, written by the server's owner) can send this
// header and call the API as whoever opened the page. Closing that needs a
// separate origin per server (a wildcard domain, with sign-in handed over
// to it); see "Known shortcomings" in docs/proxy.md.
const CSRFHeader = "X-Studio-CSRF"

// origins is the set of allowed origins: the external URL's and the
// configured extra ones, each as "scheme://host[:port]" in lower case
// with the default port left out.
type origins map[string]bool

func newOrigins(external *url.URL, extra []string) (origins, error) {
	o := origins{originOf(external): true}
	for _, s := range extra {
		u, err := url.Parse(strings.TrimSpace(s))
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("allowed origin %q: want scheme://host[:port]", s)
		}
		o[originOf(u)] = true
	}
	return o, nil
}

// originOf returns the serialized origin of u.
func originOf(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host
}

// allowed reports whether an Origin header value (or a Referer URL) names
// an allowed origin. "null" and anything unparsable are refused.
func (o origins) allowed(value string) bool {
	u, err := url.Parse(value)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return false
	}
	return o[originOf(u)]
}

// sameSite reports whether r comes from an allowed origin, judged by its
// Origin header, else its Referer. present is false when the request has
// neither (a client that is not a browser).
func (o origins) sameSite(r *http.Request) (ok, present bool) {
	if v := r.Header.Get("Origin"); v != "" {
		return o.allowed(v), true
	}
	if v := r.Header.Get("Referer"); v != "" {
		return o.allowed(v), true
	}
	return false, false
}

// checkAPIWrite checks a state-changing call of the proxy's JSON API: the
// CSRF header and an allowed Origin (or Referer) are both required.
func (o origins) checkAPIWrite(r *http.Request) bool {
	if r.Header.Get(CSRFHeader) != "1" {
		return false
	}
	ok, _ := o.sameSite(r)
	return ok
}

// checkBackendWrite checks backend traffic. Backends such as Jupyter skip
// their own XSRF checks for requests that carry their token, and the
// proxy adds the token to every request, so the proxy does the check:
// an unsafe method from a foreign Origin (or Referer) is refused. A
// request with neither header does not come from a browser page and
// passes.
func (o origins) checkBackendWrite(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	ok, present := o.sameSite(r)
	return ok || !present
}

// checkWebsocket checks the Origin of a websocket upgrade: a browser
// always sends one, and a foreign one is cross-site websocket hijacking.
// An upgrade with no Origin does not come from a browser and passes.
func (o origins) checkWebsocket(r *http.Request) bool {
	v := r.Header.Get("Origin")
	return v == "" || o.allowed(v)
}

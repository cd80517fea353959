package studio

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/studio-proxy/studio-proxy/proxy"
)

// CSRFHeader is the header every state-changing API call must carry with
// the value "1" (the proxy's, so that one rule holds for the whole API).
// A foreign page cannot send it without a CORS preflight, which the proxy
// never grants.
const CSRFHeader = proxy.CSRFHeader

var errCSRF = &apiError{
	status: http.StatusForbidden,
	code:   "csrf",
	message: "This request did not come from the Studio page, so it was refused. " +
		"Reload Studio and try again.",
}

// checkCSRF refuses a state-changing request that does not carry
// CSRFHeader or that does not come from the proxy's own origin. The Origin
// header decides; only when a browser sent none does the Referer. A
// request with neither is refused: every browser that runs the page sends
// one of them on a fetch that changes state.
func (h *Handler) checkCSRF(r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if r.Header.Get(CSRFHeader) != "1" {
		return errCSRF
	}

	from := r.Header.Get("Origin")
	if from == "" {
		from = r.Header.Get("Referer")
	}
	o := origin(from)
	if o == "" {
		return errCSRF
	}
	if len(h.origins) == 0 {
		if o != requestOrigin(r) {
			return errCSRF
		}
		return nil
	}
	if !h.origins[o] {
		return errCSRF
	}
	return nil
}

// origin returns the origin of an absolute http(s) URL in lowercase, with
// a default port removed, or "" when rawURL is none ("null", relative).
func origin(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	} else {
		host = strings.TrimSuffix(host, ":443")
	}
	return scheme + "://" + host
}

// requestOrigin is the origin a request was sent to, as this process
// sees it.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return origin(scheme + "://" + r.Host)
}

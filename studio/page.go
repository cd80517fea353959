package studio

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// web holds the page and its assets: plain HTML, CSS and JavaScript
// modules, served as they are (no build step).
//
//go:embed web
var web embed.FS

// contentSecurityPolicy allows the page nothing but its own origin: no
// inline script, no external font, script or frame. It sets no
// form-action: signing out posts to the proxy, which redirects to the
// identity provider's end-session page, and browsers apply form-action to
// that redirect too.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"

// page is the rendered home page and the assets, each with its ETag.
type page struct {
	html   []byte
	etag   string
	assets map[string]asset
}

type asset struct {
	body        []byte
	etag        string
	contentType string
}

// newPage renders the home page for the prefix and indexes the assets.
func newPage(prefix string) (*page, error) {
	p := &page{assets: map[string]asset{}}

	err := fs.WalkDir(web, "web/static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := web.ReadFile(name)
		if err != nil {
			return err
		}
		p.assets[strings.TrimPrefix(name, "web/static/")] = asset{
			body:        b,
			etag:        etagOf(b),
			contentType: contentType(name),
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading assets: %w", err)
	}

	// asset URLs carry a version, so that a new binary's assets replace
	// cached ones
	sum := sha256.New()
	for name, a := range p.assets {
		sum.Write([]byte(name + a.etag))
	}
	version := hex.EncodeToString(sum.Sum(nil))[:12]

	t, err := template.ParseFS(web, "web/index.html")
	if err != nil {
		return nil, fmt.Errorf("parsing page: %w", err)
	}
	var buf bytes.Buffer
	err = t.Execute(&buf, struct{ Prefix, Static, Version string }{
		Prefix:  prefix,
		Static:  prefix + "static/",
		Version: version,
	})
	if err != nil {
		return nil, fmt.Errorf("rendering page: %w", err)
	}
	p.html = buf.Bytes()
	p.etag = etagOf(p.html)
	return p, nil
}

func (h *Handler) servePage(w http.ResponseWriter, r *http.Request) {
	if _, ok := signedIn(r); !ok {
		// the session middleware sends signed-out visitors to sign in;
		// without it, nobody gets the page
		h.writeError(w, r, errSignedOut)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache, private")
	w.Header().Set("ETag", h.page.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(h.page.html))
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := h.page.assets[path.Clean(r.PathValue("file"))]
	if !ok {
		http.NotFound(w, r)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("ETag", a.etag)
	if r.URL.Query().Has("v") {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

func securityHeaders(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("X-Frame-Options", "DENY")
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	return "application/octet-stream"
}

package proxy

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"testing"
)

func TestStripIdentity(t *testing.T) {
	h := http.Header{}
	forged := []string{
		"X-Studio-User", "X-Studio-Admin", "X_Studio_User", "x_studio_user",
		"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username",
		"X_Forwarded_User", "X-Forwarded-For", "X_Forwarded_Host", "Forwarded",
		"Remote-User", "Remote_User", "X-Remote-User", "X-Auth-Request-User",
		"X-Auth-Request-Email", "X_Auth_Request_Groups", "Authorization", "X-Real-Ip",
	}
	for _, k := range forged {
		h[k] = []string{"mallory"} // raw keys: as they arrive, not canonicalised
	}
	h.Set("Accept", "text/html")
	h.Set("X-Studio", "not a prefix match") // "x-studio" has no dash after it
	h.Set("X-Custom-User", "kept")

	stripIdentity(h)
	for _, k := range forged {
		if _, ok := h[k]; ok {
			t.Errorf("header %q kept, want dropped", k)
		}
	}
	for _, k := range []string{"Accept", "X-Studio", "X-Custom-User"} {
		if h.Get(k) == "" {
			t.Errorf("header %q dropped, want kept", k)
		}
	}
}

func TestStripCookies(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"none of ours", []string{"_xsrf=abc; username-x=y"}, []string{"_xsrf=abc; username-x=y"}},
		{"session dropped", []string{"studio_session=s; _xsrf=abc"}, []string{"_xsrf=abc"}},
		{"host prefix dropped", []string{"__Host-studio_session=s;__Host-studio_server=bob; a=b"},
			[]string{"a=b"}},
		{"login state dropped", []string{"studio_login=x", "b=c; studio_server=alice"},
			[]string{"b=c"}},
		{"only ours", []string{"studio_session=s"}, nil},
		{"value with equals kept", []string{"a=b=c; studio_session=s"}, []string{"a=b=c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Cookie": tt.in}
			stripCookies(h)
			if got := h["Cookie"]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStripSetCookies(t *testing.T) {
	h := http.Header{"Set-Cookie": {
		"_xsrf=1; Path=/servers/alice/",
		"studio_session=evil; Path=/",
		"__Host-studio_server=bob; Path=/; Secure",
	}}
	stripSetCookies(h)
	want := []string{"_xsrf=1; Path=/servers/alice/"}
	if got := h["Set-Cookie"]; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStripCORS(t *testing.T) {
	h := http.Header{}
	h.Set("Access-Control-Allow-Origin", "https://evil.example")
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Expose-Headers", "X-Secret")
	h.Set("Content-Type", "application/json")
	stripCORS(h)
	for _, name := range []string{"Access-Control-Allow-Origin",
		"Access-Control-Allow-Credentials", "Access-Control-Expose-Headers"} {
		if got := h.Get(name); got != "" {
			t.Errorf("got %s: %q, want it removed", name, got)
		}
	}
	if got := h.Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want it kept", got)
	}
}

func TestClientIP(t *testing.T) {
	lb := netip.MustParsePrefix("10.0.0.0/8")
	ip := ClientIP([]netip.Prefix{lb})
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct client", "203.0.113.5:4000", "", "203.0.113.5"},
		{"direct client lying", "203.0.113.5:4000", "198.51.100.1", "203.0.113.5"},
		{"behind the load balancer", "10.0.0.2:80", "198.51.100.1", "198.51.100.1"},
		{"client prepends a lie", "10.0.0.2:80", "192.0.2.66, 198.51.100.1", "198.51.100.1"},
		{"two trusted hops", "10.0.0.2:80", "198.51.100.1, 10.0.0.9", "198.51.100.1"},
		{"trusted peer, no header", "10.0.0.2:80", "", "10.0.0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := ip(r); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestForwarded(t *testing.T) {
	tr := trust{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name   string
		remote string
		tls    bool
		hdr    http.Header
		want   forwarded
	}{
		{"untrusted ignores client headers", "192.0.2.1:5000", false, http.Header{
			"X-Forwarded-For":   {"1.2.3.4"},
			"X-Forwarded-Host":  {"evil.example"},
			"X-Forwarded-Proto": {"https"},
			"Forwarded":         {"for=1.2.3.4"},
		}, forwarded{forFor: "192.0.2.1", host: "studio.example", proto: "http"}},
		{"untrusted tls", "192.0.2.1:5000", true, nil,
			forwarded{forFor: "192.0.2.1", host: "studio.example", proto: "https"}},
		{"trusted appends", "10.1.2.3:5000", false, http.Header{
			"X-Forwarded-For":   {"198.51.100.7"},
			"X-Forwarded-Host":  {"studio.example.org"},
			"X-Forwarded-Proto": {"https"},
			"Forwarded":         {"for=198.51.100.7"},
		}, forwarded{forFor: "198.51.100.7, 10.1.2.3", host: "studio.example.org", proto: "https",
			header: []string{"for=198.51.100.7"}}},
		{"trusted bad proto ignored", "10.1.2.3:5000", false, http.Header{
			"X-Forwarded-Proto": {"gopher"},
		}, forwarded{forFor: "10.1.2.3", host: "studio.example", proto: "http"}},
		{"ipv4 in ipv6 trusted", "[::ffff:10.0.0.1]:80", false, nil,
			forwarded{forFor: "::ffff:10.0.0.1", host: "studio.example", proto: "http"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://studio.example/x", nil)
			r.RemoteAddr = tt.remote
			if tt.hdr != nil {
				r.Header = tt.hdr
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := tr.forwardedFor(r); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestOrigins(t *testing.T) {
	ext, _ := url.Parse("https://Studio.Example:443")
	o, err := newOrigins(ext, []string{"http://localhost:8080"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://studio.example", true},
		{"https://studio.example:443", true},
		{"http://localhost:8080", true},
		{"http://studio.example", false},
		{"https://studio.example.evil", false},
		{"https://evil.example", false},
		{"null", false},
		{"", false},
		{"https://studio.example:8443", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			if got := o.allowed(tt.origin); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if _, err := newOrigins(ext, []string{"studio.example"}); err == nil {
		t.Error("origin without scheme accepted, want error")
	}
}

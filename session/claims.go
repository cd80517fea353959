package session

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/studio-proxy/studio-proxy/authz"
	"github.com/studio-proxy/studio-proxy/internal/ident"
)

// maxTextClaim bounds, in bytes, the display name and email kept from a
// token.
const maxTextClaim = 200

// claimRules turn ID token claims into a user, or refuse them.
type claimRules struct {
	username     string
	orgClaim     string
	orgs         map[string]bool
	emailDomains map[string]bool
	unverified   bool
	groups       string
	adminGroup   string
}

func newClaimRules(cfg Config) claimRules {
	r := claimRules{
		username:   cfg.UsernameClaim,
		orgClaim:   cfg.OrgClaim,
		unverified: cfg.AllowUnverifiedEmail,
		groups:     cfg.GroupsClaim,
		adminGroup: cfg.AdminGroup,
	}
	if len(cfg.Orgs) > 0 {
		r.orgs = map[string]bool{}
		for _, o := range cfg.Orgs {
			r.orgs[strings.ToLower(o)] = true
		}
	}
	if len(cfg.EmailDomains) > 0 {
		r.emailDomains = map[string]bool{}
		for _, d := range cfg.EmailDomains {
			r.emailDomains[strings.ToLower(strings.TrimPrefix(d, "@"))] = true
		}
	}
	return r
}

// claimError is a refusal of a sign-in because of the claims: code is the
// page's stable code, msg a sentence for the person.
type claimError struct {
	code string
	msg  string
}

func (e *claimError) Error() string { return e.code + ": " + e.msg }

// user returns the user the claims describe, or a *claimError.
func (r claimRules) user(claims map[string]any) (authz.User, error) {
	var u authz.User

	raw, _ := claims[r.username].(string)
	name, err := ident.Username(raw)
	if err != nil {
		return u, &claimError{"invalid_username", fmt.Sprintf(
			"The identity provider did not give a usable username (claim %q): %v.",
			r.username, err)}
	}
	u.Name = name
	u.DisplayName = cleanText(stringClaim(claims, "name"))
	u.Email = cleanText(stringClaim(claims, "email"))

	org, err := r.org(claims, u.Email)
	if err != nil {
		return u, err
	}
	u.Org = org

	if r.adminGroup != "" {
		for _, g := range listClaim(claims, r.groups) {
			if g == r.adminGroup {
				u.Admin = true
			}
		}
	}
	return u, nil
}

// org returns the user's organization: the domain of their verified email
// when email domains are configured, else the organization claim; and
// refuses organizations that are not allowed.
func (r claimRules) org(claims map[string]any, email string) (string, error) {
	if r.emailDomains != nil {
		at := strings.LastIndexByte(email, '@')
		if at < 0 {
			return "", &claimError{"wrong_org",
				"Your account has no email address, which this Studio needs to tell your organization."}
		}
		domain := strings.ToLower(email[at+1:])
		if !r.emailDomains[domain] {
			return "", &claimError{"wrong_org", fmt.Sprintf(
				"Accounts of %s may not use this Studio.", domain)}
		}
		if !r.unverified && !boolClaim(claims, "email_verified") {
			return "", &claimError{"wrong_org",
				"Your email address is not verified at your identity provider; verify it and sign in again."}
		}
		return r.allowed(domain)
	}

	raw := stringClaim(claims, r.orgClaim)
	if raw == "" {
		return "", &claimError{"wrong_org", fmt.Sprintf(
			"Your account names no organization (claim %q), so it may not use this Studio.",
			r.orgClaim)}
	}
	return r.allowed(raw)
}

// allowed canonicalizes org and checks it against the allowed list. An
// organization ends up in keys and labels, so it follows the username
// rules.
func (r claimRules) allowed(org string) (string, error) {
	canon, err := ident.Username(org)
	if err != nil {
		return "", &claimError{"wrong_org", fmt.Sprintf(
			"Your organization %q is not a name this Studio can use.", cleanText(org))}
	}
	if r.orgs != nil && !r.orgs[canon] {
		return "", &claimError{"wrong_org", fmt.Sprintf(
			"Members of %s may not use this Studio.", canon)}
	}
	return canon, nil
}

func stringClaim(claims map[string]any, name string) string {
	s, _ := claims[name].(string)
	return s
}

// boolClaim reads a boolean claim, also when a provider sends it as the
// string "true".
func boolClaim(claims map[string]any, name string) bool {
	switch v := claims[name].(type) {
	case bool:
		return v
	case string:
		return v == "true"
	}
	return false
}

// listClaim reads a claim that is a list of strings, or a single string.
func listClaim(claims map[string]any, name string) []string {
	switch v := claims[name].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// cleanText drops control characters and bounds the length of a claim
// that is shown to people.
func cleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > maxTextClaim {
		// cut at a character boundary
		cut := maxTextClaim
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func canonicalUser(name string) (string, error) { return ident.Username(name) }

func queryEscape(s string) string { return url.QueryEscape(s) }

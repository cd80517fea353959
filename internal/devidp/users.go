package devidp

// DefaultPassword is every user's password when Config.Password is empty.
const DefaultPassword = "studio"

// AdminGroup is the group that makes a default user an admin of their
// organization; configure the proxy's admin group to match.
const AdminGroup = "studio-admins"

// The claims the provider puts in ID tokens besides the standard ones.
const (
	// OrgClaim holds the user's organization.
	OrgClaim = "org"
	// GroupsClaim holds the user's groups, a list of strings.
	GroupsClaim = "groups"
)

// User is one person who can sign in at the provider.
type User struct {
	// Username is the login name, given as the preferred_username claim.
	Username string
	// Name is the full name, given as the name claim.
	Name  string
	Email string
	// Org is the organization, given as the "org" claim; empty leaves the
	// claim out.
	Org string
	// Groups are given as the "groups" claim.
	Groups []string
}

// subject is the stable "sub" claim of the user.
func (u User) subject() string { return "dev-" + u.Username }

// DefaultUsers returns the built-in users: alice and bob, colleagues at
// acme; carol, an admin at acme; and mallory, of another organization.
func DefaultUsers() []User {
	return []User{
		{Username: "alice", Name: "Alice Archer", Email: "alice@acme.test", Org: "acme"},
		{Username: "bob", Name: "Bob Baker", Email: "bob@acme.test", Org: "acme"},
		{
			Username: "carol", Name: "Carol Cole", Email: "carol@acme.test", Org: "acme",
			Groups: []string{AdminGroup},
		},
		{Username: "mallory", Name: "Mallory Moss", Email: "mallory@other.test", Org: "other"},
	}
}

package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const unitPath = "systemd/studio-proxy.service"

// unit is a parsed systemd unit: section, then key, then every value the
// key was given, in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// last is the value that counts for a key: the last one given.
func (u unit) last(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// unitEnvironment is the names of the variables the unit sets inline.
func unitEnvironment(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, v := range parseUnit(t, unitPath)["Service"]["Environment"] {
		for _, assign := range strings.Fields(v) {
			name, _, _ := strings.Cut(strings.Trim(assign, `"`), "=")
			names = append(names, name)
		}
	}
	return names
}

func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, unitPath)

	exec, _ := u.last("Service", "ExecStart")
	if fields := strings.Fields(exec); len(fields) < 2 ||
		filepath.Base(fields[0]) != "studio-proxy" || fields[1] != "serve" {
		t.Errorf("got ExecStart %q, want studio-proxy serve", exec)
	}
	if user, _ := u.last("Service", "User"); user == "" || user == "root" || user == "0" {
		t.Errorf("got User %q, want a system user of its own", user)
	}
	if _, ok := u.last("Service", "EnvironmentFile"); !ok {
		t.Error("no EnvironmentFile: secrets would have to be inline")
	}

	env := map[string]string{}
	for _, v := range u["Service"]["Environment"] {
		for _, assign := range strings.Fields(v) {
			name, value, _ := strings.Cut(strings.Trim(assign, `"`), "=")
			env[name] = value
			if secretLooking.MatchString(name) || credentialURL.MatchString(value) {
				t.Errorf("Environment sets %s inline, want it in the EnvironmentFile", name)
			}
		}
	}
	if env["STUDIO_DRIVER"] != "process" {
		t.Errorf("got STUDIO_DRIVER %q, want process", env["STUDIO_DRIVER"])
	}

	hardening := map[string]string{
		"NoNewPrivileges":         "yes",
		"CapabilityBoundingSet":   "",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"ProtectKernelTunables":   "yes",
		"ProtectKernelModules":    "yes",
		"ProtectControlGroups":    "yes",
		"RestrictNamespaces":      "yes",
		"RestrictSUIDSGID":        "yes",
		"LockPersonality":         "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
	}
	for key, want := range hardening {
		got, ok := u.last("Service", key)
		if !ok || got != want {
			t.Errorf("got %s=%q (set: %v), want %q", key, got, ok, want)
		}
	}

	// what it writes is its own state and logs, nothing else
	for _, key := range []string{"StateDirectory", "LogsDirectory"} {
		if v, _ := u.last("Service", key); v != "studio-proxy" {
			t.Errorf("got %s=%q, want studio-proxy", key, v)
		}
	}
	for name, dir := range map[string]string{
		"STUDIO_SERVER_ROOT":    "/var/lib/studio-proxy/",
		"STUDIO_SERVER_LOG_DIR": "/var/log/studio-proxy",
	} {
		if !strings.HasPrefix(env[name], dir) {
			t.Errorf("got %s=%q, want it under %s, which the unit may write", name,
				env[name], dir)
		}
	}
	if got, _ := u.last("Install", "WantedBy"); got != "multi-user.target" {
		t.Errorf("got WantedBy %q, want multi-user.target", got)
	}
}

package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// instruction is one instruction of a Containerfile.
type instruction struct {
	line int
	op   string // upper case: FROM, RUN, ...
	args string
}

// parseContainerfile reads the instructions of a Containerfile, with
// continuation lines joined and comments dropped.
func parseContainerfile(t *testing.T, path string) []instruction {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		op, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{start, strings.ToUpper(op), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

func TestContainerfile(t *testing.T) {
	ins := parseContainerfile(t, "Containerfile")

	// split into stages
	var stages [][]instruction
	for _, in := range ins {
		if in.op == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.op != "ARG" {
				t.Errorf("line %d: %s before the first FROM", in.line, in.op)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("got %d stages, want a build stage and a final one", len(stages))
	}

	t.Run("static build", func(t *testing.T) {
		found := false
		for _, st := range stages[:len(stages)-1] {
			for _, in := range st {
				if in.op == "RUN" && strings.Contains(in.args, "go build") {
					found = true
					for _, want := range []string{"CGO_ENABLED=0", "-trimpath",
						"./cmd/studio-proxy"} {
						if !strings.Contains(in.args, want) {
							t.Errorf("line %d: go build without %s", in.line, want)
						}
					}
				}
			}
		}
		if !found {
			t.Error("no stage runs go build")
		}
	})

	final := stages[len(stages)-1]
	t.Run("final stage", func(t *testing.T) {
		base := strings.Fields(final[0].args)[0]
		distroless := regexp.MustCompile(`^gcr\.io/distroless/static[a-z0-9-]*:nonroot$`)
		if base != "scratch" && !distroless.MatchString(base) {
			t.Errorf("got final base %q, want scratch or distroless static nonroot", base)
		}

		user, entrypoint := "", ""
		for _, in := range final {
			switch in.op {
			case "USER":
				user = in.args
			case "ENTRYPOINT":
				entrypoint = in.args
			case "RUN", "SHELL":
				t.Errorf("line %d: %s in the final stage, which has no shell", in.line, in.op)
			case "CMD":
				if !strings.HasPrefix(in.args, "[") {
					t.Errorf("line %d: CMD in shell form needs a shell", in.line)
				}
			}
		}
		if !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(user) {
			t.Errorf("got USER %q, want a numeric non-root uid (and gid)", user)
		}
		var words []string
		if err := json.Unmarshal([]byte(entrypoint), &words); err != nil {
			t.Fatalf("got ENTRYPOINT %q, want the exec (JSON) form: %v", entrypoint, err)
		}
		if strings.Join(words, " ") != "/studio-proxy serve" {
			t.Errorf("got ENTRYPOINT %q, want [\"/studio-proxy\", \"serve\"]", words)
		}
	})
}

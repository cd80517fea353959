package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// serveFlags returns the environment variables of the flags that
// cmd/studio-proxy defines, read from its source: STUDIO_ and the flag's
// name in upper case with '_' for '-'.
func serveFlags(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "cmd", "studio-proxy", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("got command sources %v (%v), want some", files, err)
	}
	env := map[string]bool{}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if name, ok := flagName(n); ok {
				env["STUDIO_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = true
			}
			return true
		})
	}
	if len(env) == 0 {
		t.Fatal("found no flags in cmd/studio-proxy")
	}
	return env
}

// flagName recognizes fs.StringVar(&x, "name", ...) and its kin, and
// fs.String("name", ...), returning the flag's name.
func flagName(n ast.Node) (string, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok {
		return "", false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return "", false
	}
	arg := -1
	switch sel.Sel.Name {
	case "StringVar", "BoolVar", "IntVar", "Int64Var", "DurationVar", "Var", "UintVar",
		"Float64Var", "TextVar", "Func", "BoolFunc":
		arg = 1
		if sel.Sel.Name == "Func" || sel.Sel.Name == "BoolFunc" {
			arg = 0
		}
	case "String", "Bool", "Int", "Int64", "Duration", "Uint", "Float64":
		arg = 0
	default:
		return "", false
	}
	if len(call.Args) <= arg {
		return "", false
	}
	lit, ok := call.Args[arg].(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	name, err := strconv.Unquote(lit.Value)
	return name, err == nil
}

// TestSettingsAreFlags checks that every STUDIO_ variable the manifests
// and the systemd unit set is one that studio-proxy reads, so that a
// renamed flag cannot leave a setting silently ignored.
func TestSettingsAreFlags(t *testing.T) {
	known := serveFlags(t)
	for _, want := range []string{"STUDIO_REDIS_URL", "STUDIO_LISTEN", "STUDIO_K8S_NAMESPACE"} {
		if !known[want] {
			t.Fatalf("flag parsing found no %s; the test no longer reads the flags right", want)
		}
	}

	ms := loadManifests(t)
	set := map[string]string{}
	for k := range config(t, ms) {
		set[k] = "the ConfigMap"
	}
	for k := range secrets(t, ms) {
		set[k] = "the Secret"
	}
	for _, k := range unitEnvironment(t) {
		set[k] = "the systemd unit"
	}

	var names []string
	for k := range set {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !known[k] {
			t.Errorf("%s sets %s, which no flag of studio-proxy reads", set[k], k)
		}
	}
}

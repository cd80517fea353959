package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/studio-proxy/studio-proxy/backend/k8s"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
)

// The names the manifests and this test agree on.
const (
	proxyName     = "studio-proxy"
	redisName     = "redis"
	healthzPath   = "/studio/healthz"
	readyzPath    = "/studio/readyz"
	placeholderRE = `^.*REPLACE-WITH-[A-Z-]+.*$`
)

// manifest is one document of one manifest file.
type manifest struct {
	file string
	obj  runtime.Object
}

// strictDecoder decodes YAML into the API types of client-go's scheme and
// refuses unknown and duplicate fields.
var strictDecoder = json.NewSerializerWithOptions(json.DefaultMetaFactory,
	scheme.Scheme, scheme.Scheme, json.SerializerOptions{Yaml: true, Strict: true})

// decode decodes one YAML document strictly.
func decode(doc []byte) (runtime.Object, error) {
	obj, _, err := strictDecoder.Decode(doc, nil, nil)
	return obj, err
}

// loadManifests decodes every document of every file in kubernetes/.
func loadManifests(t *testing.T) []manifest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("got manifest files %v (%v), want some", files, err)
	}
	var out []manifest
	for _, file := range files {
		for i, doc := range splitDocuments(t, file) {
			obj, err := decode(doc)
			if err != nil {
				t.Fatalf("%s, document %d: %v", file, i+1, err)
			}
			out = append(out, manifest{file: file, obj: obj})
		}
	}
	return out
}

// splitDocuments returns the documents of a multi-document YAML file,
// without those that hold only comments.
func splitDocuments(t *testing.T, file string) [][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !onlyComments(doc) {
			docs = append(docs, doc)
		}
	}
}

func onlyComments(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && string(line) != "---" {
			return false
		}
	}
	return true
}

// all returns the objects of type T among ms.
func all[T runtime.Object](ms []manifest) []T {
	var out []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// one returns the object of type T called name, failing t if there is
// not exactly one.
func one[T interface {
	runtime.Object
	GetName() string
}](t *testing.T, ms []manifest, name string) T {
	t.Helper()
	var found []T
	for _, o := range all[T](ms) {
		if o.GetName() == name {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("got %d objects of type %T called %q, want 1", len(found), zero, name)
	}
	return found[0]
}

func TestDecoderIsStrict(t *testing.T) {
	tests := []struct {
		name, doc string
	}{
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\n" +
			"metadata: {name: x}\nspec: {replicass: 2}\n"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\n" +
			"metadata: {name: x}\nspec: {replicas: two}\n"},
		{"duplicate field", "apiVersion: v1\nkind: Service\n" +
			"metadata: {name: x, name: y}\n"},
		{"unknown kind", "apiVersion: v1\nkind: Deploymint\nmetadata: {name: x}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decode([]byte(tt.doc)); err == nil {
				t.Error("got nil error, want the document refused")
			}
		})
	}
}

func TestManifestsDecode(t *testing.T) {
	ms := loadManifests(t)
	kinds := map[string]int{}
	for _, m := range ms {
		kinds[m.obj.GetObjectKind().GroupVersionKind().Kind]++
	}
	for _, want := range []string{"Namespace", "Deployment", "Service", "PodDisruptionBudget",
		"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret", "StatefulSet",
		"NetworkPolicy"} {
		if kinds[want] == 0 {
			t.Errorf("got no %s, want one (all kinds: %v)", want, kinds)
		}
	}
}

func TestNamespaces(t *testing.T) {
	ms := loadManifests(t)
	declared := map[string]bool{}
	for _, ns := range all[*corev1.Namespace](ms) {
		declared[ns.Name] = true
		if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
			t.Errorf("namespace %s: got pod security %q, want restricted", ns.Name, got)
		}
	}
	for _, m := range ms {
		if _, isNS := m.obj.(*corev1.Namespace); isNS {
			continue
		}
		meta, err := metaOf(m.obj)
		if err != nil {
			t.Fatal(err)
		}
		if !declared[meta.GetNamespace()] {
			t.Errorf("%s: %T %s is in namespace %q, want one of %v",
				m.file, m.obj, meta.GetName(), meta.GetNamespace(), declared)
		}
	}

	// the servers live apart from the proxy and its secrets
	servers := config(t, ms)["STUDIO_K8S_NAMESPACE"]
	proxy := one[*appsv1.Deployment](t, ms, proxyName)
	if servers == "" || servers == proxy.Namespace || !declared[servers] {
		t.Errorf("got servers' namespace %q, want a declared one other than the proxy's %q",
			servers, proxy.Namespace)
	}
}

func metaOf(obj runtime.Object) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, errors.New("object without metadata")
	}
	return m, nil
}

// config is the proxy's ConfigMap data.
func config(t *testing.T, ms []manifest) map[string]string {
	t.Helper()
	d := one[*appsv1.Deployment](t, ms, proxyName)
	for _, from := range d.Spec.Template.Spec.Containers[0].EnvFrom {
		if ref := from.ConfigMapRef; ref != nil {
			return one[*corev1.ConfigMap](t, ms, ref.Name).Data
		}
	}
	t.Fatal("the proxy reads no ConfigMap")
	return nil
}

// secrets is the proxy's Secret data.
func secrets(t *testing.T, ms []manifest) map[string]string {
	t.Helper()
	d := one[*appsv1.Deployment](t, ms, proxyName)
	for _, from := range d.Spec.Template.Spec.Containers[0].EnvFrom {
		if ref := from.SecretRef; ref != nil {
			return one[*corev1.Secret](t, ms, ref.Name).StringData
		}
	}
	t.Fatal("the proxy reads no Secret")
	return nil
}

func TestProxyDeployment(t *testing.T) {
	ms := loadManifests(t)
	d := one[*appsv1.Deployment](t, ms, proxyName)
	spec := d.Spec.Template.Spec

	if r := d.Spec.Replicas; r == nil || *r < 2 {
		t.Errorf("got replicas %s, want at least 2", deref(r))
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("got %d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]

	t.Run("probes", func(t *testing.T) {
		conf := config(t, ms)
		httpPort := portOf(t, conf["STUDIO_LISTEN"])
		metricsPort := portOf(t, conf["STUDIO_METRICS_LISTEN"])
		if httpPort == metricsPort {
			t.Errorf("metrics share the proxy's port %d", httpPort)
		}
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{
			{"readiness", c.ReadinessProbe, readyzPath},
			{"liveness", c.LivenessProbe, healthzPath},
		} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s probe: missing or not HTTP", p.name)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s probe: got path %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
			}
			if got := containerPort(t, c, p.probe.HTTPGet.Port); got != httpPort {
				t.Errorf("%s probe: got port %d, want the proxy's %d", p.name, got, httpPort)
			}
		}
		if got := containerPort(t, c, intstr.FromString("metrics")); got != metricsPort {
			t.Errorf("got metrics port %d, want %d", got, metricsPort)
		}
	})

	t.Run("configuration", func(t *testing.T) {
		var cm, sec bool
		for _, from := range c.EnvFrom {
			cm = cm || from.ConfigMapRef != nil
			sec = sec || from.SecretRef != nil
		}
		if !cm || !sec {
			t.Errorf("got envFrom %+v, want a ConfigMap and a Secret", c.EnvFrom)
		}
		if len(c.Env) > 0 {
			t.Errorf("got inline env %+v, want all settings from the ConfigMap and Secret", c.Env)
		}
		conf, sect := config(t, ms), secrets(t, ms)
		for _, key := range []string{"STUDIO_OIDC_CLIENT_SECRET", "STUDIO_REDIS_URL"} {
			if _, ok := sect[key]; !ok {
				t.Errorf("%s is not in the Secret", key)
			}
			if _, ok := conf[key]; ok {
				t.Errorf("%s is in the ConfigMap, want it only in the Secret", key)
			}
		}
		if conf["STUDIO_DRIVER"] != "kubernetes" || conf["STUDIO_K8S_IMAGE"] == "" {
			t.Errorf("got driver %q image %q, want kubernetes with an image",
				conf["STUDIO_DRIVER"], conf["STUDIO_K8S_IMAGE"])
		}
		if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
			t.Error("service links are on: Services called studio-* would add STUDIO_ variables")
		}
	})

	t.Run("service account", func(t *testing.T) {
		sa := one[*corev1.ServiceAccount](t, ms, spec.ServiceAccountName)
		if sa.Namespace != d.Namespace {
			t.Errorf("got service account in %q, want %q", sa.Namespace, d.Namespace)
		}
	})

	t.Run("graceful shutdown", func(t *testing.T) {
		if g := spec.TerminationGracePeriodSeconds; g == nil || *g <= 30 {
			t.Errorf("got grace period %v, want more than the 30s shutdown timeout", g)
		}
	})
}

// portOf is the port of a listen address such as ":8080".
func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("listen address %q has no port", addr)
	}
	n, err := strconv.ParseUint(addr[i+1:], 10, 16)
	if err != nil || n == 0 {
		t.Fatalf("listen address %q: bad port", addr)
	}
	return int32(n)
}

// containerPort resolves a probe's or service's port to a number of c.
func containerPort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("container %s has no port called %q", c.Name, p.StrVal)
	return 0
}

// podTemplates are the pod templates of every workload, by name.
func podTemplates(ms []manifest) map[string]corev1.PodTemplateSpec {
	out := map[string]corev1.PodTemplateSpec{}
	for _, d := range all[*appsv1.Deployment](ms) {
		out[d.Namespace+"/"+d.Name] = d.Spec.Template
	}
	for _, s := range all[*appsv1.StatefulSet](ms) {
		out[s.Namespace+"/"+s.Name] = s.Spec.Template
	}
	return out
}

func TestWorkloadSecurity(t *testing.T) {
	for name, tmpl := range podTemplates(loadManifests(t)) {
		t.Run(name, func(t *testing.T) {
			spec := tmpl.Spec
			psc := spec.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Error("runAsNonRoot is not set")
			}
			if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
				t.Error("no numeric non-root user")
			}
			if psc == nil || psc.SeccompProfile == nil ||
				psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("seccomp profile is not RuntimeDefault")
			}
			if spec.HostNetwork || spec.HostPID || spec.HostIPC {
				t.Error("shares a host namespace")
			}
			for _, v := range spec.Volumes {
				if v.HostPath != nil {
					t.Errorf("volume %s is a host path", v.Name)
				}
			}
			for _, c := range append(spec.InitContainers, spec.Containers...) {
				checkContainer(t, c)
			}
		})
	}
}

func checkContainer(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("container %s: no security context", c.Name)
		return
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container %s: privileged", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("container %s: privilege escalation allowed", c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("container %s: root file system is writable", c.Name)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		len(sc.Capabilities.Add) > 0 {
		t.Errorf("container %s: got capabilities %+v, want drop ALL", c.Name, sc.Capabilities)
	}
	if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
		t.Errorf("container %s: runs as root", c.Name)
	}
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
		t.Errorf("container %s: got resources %+v, want CPU and memory requests and a "+
			"memory limit", c.Name, c.Resources)
	}
}

// secretLooking matches names of settings that hold secrets.
var secretLooking = regexp.MustCompile(`(?i)secret|password|passwd|token|credential|` +
	`private|api_?key`)

// credentialURL matches a URL with a password in it.
var credentialURL = regexp.MustCompile(`://[^/@\s]*:[^/@\s]*@`)

func TestNoSecretsInline(t *testing.T) {
	ms := loadManifests(t)

	for name, tmpl := range podTemplates(ms) {
		for _, c := range tmpl.Spec.Containers {
			for _, e := range c.Env {
				if e.Value == "" {
					continue
				}
				if secretLooking.MatchString(e.Name) || credentialURL.MatchString(e.Value) {
					t.Errorf("%s: container %s sets %s inline, want it from a Secret",
						name, c.Name, e.Name)
				}
			}
			for _, arg := range append(slices.Clone(c.Command), c.Args...) {
				if credentialURL.MatchString(arg) {
					t.Errorf("%s: container %s has a credential in its command line",
						name, c.Name)
				}
			}
		}
	}
	for _, cm := range all[*corev1.ConfigMap](ms) {
		for k, v := range cm.Data {
			if secretLooking.MatchString(k) || credentialURL.MatchString(v) {
				t.Errorf("ConfigMap %s holds %s, which belongs in a Secret", cm.Name, k)
			}
		}
	}

	// example Secrets hold placeholders, plainly
	placeholder := regexp.MustCompile(placeholderRE)
	for _, s := range all[*corev1.Secret](ms) {
		if s.Labels["studio-proxy.io/placeholder"] != "true" {
			t.Errorf("Secret %s is not labelled studio-proxy.io/placeholder, so applying "+
				"the manifests as docs/deploy.md says would overwrite the real one", s.Name)
		}
		if len(s.Data) > 0 {
			t.Errorf("Secret %s has base64 data, want readable placeholders in stringData",
				s.Name)
		}
		for k, v := range s.StringData {
			if !placeholder.MatchString(v) {
				t.Errorf("Secret %s: %s = %q is not a REPLACE-WITH-... placeholder", s.Name, k, v)
			}
		}
	}
}

func TestServicesSelectTheirPods(t *testing.T) {
	ms := loadManifests(t)
	templates := podTemplates(ms)
	for _, svc := range all[*corev1.Service](ms) {
		t.Run(svc.Name, func(t *testing.T) {
			if len(svc.Spec.Selector) == 0 {
				t.Fatal("no selector")
			}
			sel := labels.SelectorFromSet(svc.Spec.Selector)
			var matched []string
			for name, tmpl := range templates {
				if strings.HasPrefix(name, svc.Namespace+"/") &&
					sel.Matches(labels.Set(tmpl.Labels)) {
					matched = append(matched, name)
					for _, p := range svc.Spec.Ports {
						containerPort(t, tmpl.Spec.Containers[0], p.TargetPort)
					}
				}
			}
			if len(matched) != 1 {
				t.Errorf("selects the pods of %v, want exactly one workload", matched)
			}
		})
	}
}

func TestPodDisruptionBudget(t *testing.T) {
	ms := loadManifests(t)
	d := one[*appsv1.Deployment](t, ms, proxyName)
	pdbs := all[*policyv1.PodDisruptionBudget](ms)
	if len(pdbs) != 1 {
		t.Fatalf("got %d PodDisruptionBudgets, want 1", len(pdbs))
	}
	pdb := pdbs[0]
	if pdb.Namespace != d.Namespace {
		t.Errorf("got namespace %q, want the proxy's %q", pdb.Namespace, d.Namespace)
	}
	if m := pdb.Spec.MinAvailable; m == nil || m.Type != intstr.Int || m.IntVal != 1 {
		t.Errorf("got minAvailable %v, want 1", pdb.Spec.MinAvailable)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	for name, tmpl := range podTemplates(ms) {
		want := name == d.Namespace+"/"+d.Name
		if got := sel.Matches(labels.Set(tmpl.Labels)); got != want {
			t.Errorf("selects %s: got %v, want %v", name, got, want)
		}
	}
}

func TestRBAC(t *testing.T) {
	ms := loadManifests(t)
	if n := len(all[*rbacv1.ClusterRole](ms)) + len(all[*rbacv1.ClusterRoleBinding](ms)); n > 0 {
		t.Errorf("got %d cluster-wide RBAC objects, want none", n)
	}
	roles := all[*rbacv1.Role](ms)
	bindings := all[*rbacv1.RoleBinding](ms)
	if len(roles) != 1 || len(bindings) != 1 {
		t.Fatalf("got %d Roles and %d RoleBindings, want 1 each", len(roles), len(bindings))
	}
	role, binding := roles[0], bindings[0]
	d := one[*appsv1.Deployment](t, ms, proxyName)

	servers := config(t, ms)["STUDIO_K8S_NAMESPACE"]
	if role.Namespace != servers || binding.Namespace != servers {
		t.Errorf("got Role in %q and binding in %q, want both in the servers' namespace %q",
			role.Namespace, binding.Namespace, servers)
	}
	if got, want := ruleSet(role.Rules), ruleSet(k8s.RequiredRules()); !slices.Equal(got, want) {
		t.Errorf("got rules\n  %v\nwant exactly what the driver needs\n  %v", got, want)
	}

	ref := binding.RoleRef
	if ref.Kind != "Role" || ref.Name != role.Name || ref.APIGroup != rbacv1.GroupName {
		t.Errorf("got roleRef %+v, want Role %s", ref, role.Name)
	}
	want := []rbacv1.Subject{{Kind: "ServiceAccount",
		Name: d.Spec.Template.Spec.ServiceAccountName, Namespace: d.Namespace}}
	if !slices.Equal(binding.Subjects, want) {
		t.Errorf("got subjects %+v, want only the proxy's service account %+v",
			binding.Subjects, want)
	}
}

// ruleSet flattens rules into sorted "group/resource verb" entries, so
// that two lists granting the same compare equal.
func ruleSet(rules []rbacv1.PolicyRule) []string {
	var out []string
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, g+"/"+res+" "+v)
				}
			}
		}
		if len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			out = append(out, "unexpected: names or URLs")
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestRedis(t *testing.T) {
	ms := loadManifests(t)
	sts := one[*appsv1.StatefulSet](t, ms, redisName)
	c := sts.Spec.Template.Spec.Containers[0]
	args := append(slices.Clone(c.Command), c.Args...)

	if v := flagValue(args, "--appendonly"); v != "yes" {
		t.Errorf("got --appendonly %q, want yes", v)
	}
	if r := sts.Spec.Replicas; r == nil || *r != 1 {
		t.Errorf("got replicas %s, want 1: copies would not replicate", deref(r))
	}

	// the append-only file lands on the claim template's volume
	if len(sts.Spec.VolumeClaimTemplates) == 0 {
		t.Fatal("no volumeClaimTemplates")
	}
	claim := sts.Spec.VolumeClaimTemplates[0].Name
	dir := flagValue(args, "--dir")
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.Name == claim && m.MountPath == dir
	}
	if !mounted {
		t.Errorf("got --dir %q and mounts %+v, want the claim %s mounted there",
			dir, c.VolumeMounts, claim)
	}

	// a headless service names the pod
	svc := one[*corev1.Service](t, ms, sts.Spec.ServiceName)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("service %s: got clusterIP %q, want None", svc.Name, svc.Spec.ClusterIP)
	}

	// the password comes from a Secret, the same one the proxy's URL has
	pass := ""
	for _, e := range c.Env {
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil &&
			flagValue(args, "--requirepass") == "$("+e.Name+")" {
			pass = one[*corev1.Secret](t, ms, ref.SecretKeyRef.Name).
				StringData[ref.SecretKeyRef.Key]
		}
	}
	if pass == "" {
		t.Fatal("--requirepass does not come from a Secret")
	}
	u, err := url.Parse(secrets(t, ms)["STUDIO_REDIS_URL"])
	if err != nil {
		t.Fatalf("STUDIO_REDIS_URL: %v", err)
	}
	if p, _ := u.User.Password(); p != pass {
		t.Errorf("got password %q in STUDIO_REDIS_URL, want Redis's %q", p, pass)
	}
	wantHost := sts.Name + "-0." + svc.Name + "." + sts.Namespace + ".svc"
	if u.Hostname() != wantHost || u.Port() != "6379" {
		t.Errorf("got Redis at %s, want %s:6379", u.Host, wantHost)
	}
}

// flagValue is the word after name in args.
func flagValue(args []string, name string) string {
	i := slices.Index(args, name)
	if i < 0 || i+1 == len(args) {
		return ""
	}
	return args[i+1]
}

func TestNetworkPolicies(t *testing.T) {
	ms := loadManifests(t)
	d := one[*appsv1.Deployment](t, ms, proxyName)
	proxyPods := labels.Set(d.Spec.Template.Labels)
	servers := config(t, ms)["STUDIO_K8S_NAMESPACE"]

	tests := []struct {
		name      string
		namespace string
		pods      labels.Set
		port      int32
	}{
		{"servers", servers, labels.Set(k8s.ServerSelector()), k8s.DefaultPort},
		{"redis", one[*appsv1.StatefulSet](t, ms, redisName).Namespace,
			labels.Set(one[*appsv1.StatefulSet](t, ms, redisName).Spec.Template.Labels), 6379},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var policy *networkingv1.NetworkPolicy
			for _, p := range all[*networkingv1.NetworkPolicy](ms) {
				sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
				if err == nil && p.Namespace == tt.namespace && sel.Matches(tt.pods) {
					policy = p
				}
			}
			if policy == nil {
				t.Fatal("no NetworkPolicy selects these pods")
			}
			if len(policy.Spec.Ingress) != 1 || len(policy.Spec.Ingress[0].From) != 1 {
				t.Fatalf("got ingress %+v, want one rule from one peer", policy.Spec.Ingress)
			}
			rule := policy.Spec.Ingress[0]
			peer := rule.From[0]
			podSel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if err != nil || peer.PodSelector == nil || !podSel.Matches(proxyPods) {
				t.Errorf("got peer %+v, want the proxy's pods", peer)
			}
			if peer.IPBlock != nil {
				t.Errorf("got an IP block %+v, want the proxy's pods only", peer.IPBlock)
			}
			if tt.namespace != d.Namespace {
				nsSel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
				nsLabels := labels.Set{"kubernetes.io/metadata.name": d.Namespace}
				if err != nil || peer.NamespaceSelector == nil || !nsSel.Matches(nsLabels) ||
					nsSel.Matches(labels.Set{"kubernetes.io/metadata.name": tt.namespace}) {
					t.Errorf("got namespace selector %+v, want the proxy's namespace only",
						peer.NamespaceSelector)
				}
			}
			var ports []string
			for _, p := range rule.Ports {
				if p.Port != nil {
					ports = append(ports, p.Port.String())
				}
			}
			want := strconv.Itoa(int(tt.port))
			if len(rule.Ports) != 1 || !slices.Equal(ports, []string{want}) {
				t.Errorf("got ports %v, want %s only", ports, want)
			}
		})
	}
}

// deref shows a replica count that may be unset.
func deref(n *int32) string {
	if n == nil {
		return "unset"
	}
	return strconv.Itoa(int(*n))
}

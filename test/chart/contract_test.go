package chart

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/wasmkube/wasmkube/images"
	"github.com/wasmkube/wasmkube/internal/controller"
	"github.com/wasmkube/wasmkube/internal/testenv"
)

// convert decodes a rendered object into a typed one.
func convert(t testing.TB, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
		t.Fatalf("decode %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

func renderedDeployment(t testing.TB, objs []*unstructured.Unstructured, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	convert(t, find(t, objs, "Deployment", name), &d)
	return &d
}

// argValue returns the value of --name=value in args, and whether it is there.
func argValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestDeploymentHardening(t *testing.T) {
	t.Parallel()
	d := renderedDeployment(t, mustRender(t, nil), "wasmkube-manager")
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v, want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	if psc != nil && (psc.RunAsUser == nil || *psc.RunAsUser != images.NonRootUID) {
		t.Errorf("pod runAsUser = %v, want the manager image's user %d", psc.RunAsUser, images.NonRootUID)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("manager pod has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext = %+v, want a read-only root, no privilege escalation, all capabilities dropped", sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v, want CPU and memory requests and a memory limit", c.Resources)
	}
	probeAddr, _ := argValue(c.Args, "health-probe-bind-address")
	for name, p := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != name || p.HTTPGet.Port.String() != "health" {
			t.Errorf("probe %s = %+v, want an HTTP GET on the health port", name, p)
		}
	}
	var healthPort int32
	for _, p := range c.Ports {
		if p.Name == "health" {
			healthPort = p.ContainerPort
		}
	}
	if probeAddr != ":"+strconv.Itoa(int(healthPort)) {
		t.Errorf("--health-probe-bind-address=%s but the health port is %d", probeAddr, healthPort)
	}
	if pod.ServiceAccountName != "wasmkube" {
		t.Errorf("serviceAccountName = %q, want wasmkube", pod.ServiceAccountName)
	}
}

func TestLeaderElectionFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sets []string
		want string
	}{
		{nil, "true"},
		{[]string{"manager.leaderElection=false"}, "false"},
		{[]string{"manager.replicas=3"}, "true"},
	} {
		d := renderedDeployment(t, mustRender(t, nil, tc.sets...), "wasmkube-manager")
		if got, ok := argValue(d.Spec.Template.Spec.Containers[0].Args, "leader-elect"); !ok || got != tc.want {
			t.Errorf("values %v: --leader-elect=%q (present %v), want %q", tc.sets, got, ok, tc.want)
		}
	}
}

// TestManagerAcceptsRenderedArgs runs the real manager binary with the arguments the chart renders,
// followed by --help: the manager parses every flag before it sees --help, so it exits 0 only when
// each rendered flag exists and its value parses.
func TestManagerAcceptsRenderedArgs(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "manager")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/manager")
	build.Dir = repoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build cmd/manager: %v\n%s", err, out)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, append(args, "--help")...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := run("--no-such-flag"); err == nil {
		t.Fatalf("the manager accepted an unknown flag before --help; this check would prove nothing:\n%s", out)
	}
	for name, tc := range goldenCases {
		objs := mustRender(t, tc.files, tc.sets...)
		d := renderedDeployment(t, objs, deploymentName(tc.files))
		argLists := [][]string{d.Spec.Template.Spec.Containers[0].Args}
		for _, j := range hookJobs(t, objs) {
			argLists = append(argLists, j.Spec.Template.Spec.Containers[0].Args)
		}
		for _, args := range argLists {
			if out, err := run(args...); err != nil {
				t.Errorf("%s values: the manager refuses the chart's arguments %q: %v\n%s", name, args, err, out)
			}
		}
	}
}

// hookJobs returns the rendered Jobs that are Helm hooks.
func hookJobs(t testing.TB, objs []*unstructured.Unstructured) []*batchv1.Job {
	t.Helper()
	var out []*batchv1.Job
	for _, o := range objs {
		if o.GetKind() == "Job" && o.GetAnnotations()["helm.sh/hook"] != "" {
			var j batchv1.Job
			convert(t, o, &j)
			out = append(out, &j)
		}
	}
	return out
}

// TestHooks checks the hooks the chart renders: the pre-delete hook that uninstalls the Shims while the
// manager runs (bounded, printing its log on failure), and the pre-upgrade hook that updates the CRD
// from exactly the chart's crds/. Each can be switched off.
func TestHooks(t *testing.T) {
	t.Parallel()
	crd, err := os.ReadFile(filepath.Join(chartDir(t), "crds", "wasmkube.io_shims.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name              string
		files, sets       []string
		uninstallDeadline int64 // 0: no pre-delete hook
		uninstallTimeout  string
		crdUpgrade        bool
	}{
		{name: "default", uninstallDeadline: 270 + 60, uninstallTimeout: "4m30s", crdUpgrade: true},
		{name: "custom", files: []string{"custom.yaml"}, uninstallDeadline: 3723 + 60, uninstallTimeout: "1h2m3s"},
		{name: "off", sets: []string{"uninstall.deleteShims=false", "crds.upgrade=false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs := mustRender(t, tc.files, tc.sets...)
			jobs := map[string]*batchv1.Job{}
			for _, j := range hookJobs(t, objs) {
				jobs[j.Annotations["helm.sh/hook"]] = j
			}
			if j := jobs["pre-delete"]; (j != nil) != (tc.uninstallDeadline != 0) {
				t.Fatalf("pre-delete hook rendered: %v, want %v", j != nil, tc.uninstallDeadline != 0)
			} else if j != nil {
				c := j.Spec.Template.Spec.Containers[0]
				if want := []string{"uninstall-shims", "--timeout=" + tc.uninstallTimeout}; !reflect.DeepEqual(c.Args, want) {
					t.Errorf("pre-delete hook args %q, want %q", c.Args, want)
				}
				if d := j.Spec.ActiveDeadlineSeconds; d == nil || *d != tc.uninstallDeadline {
					t.Errorf("pre-delete hook activeDeadlineSeconds %v, want %d (the wait plus a minute)", d, tc.uninstallDeadline)
				}
				if j.Annotations["helm.sh/hook-output-log-policy"] != "hook-failed" {
					t.Error("the pre-delete hook's log is not shown when it fails")
				}
				if sa := j.Spec.Template.Spec.ServiceAccountName; sa == "" || sa == "wasmkube" || sa == "wk-controller" {
					t.Errorf("pre-delete hook runs as %q, want a ServiceAccount of its own", sa)
				}
			}
			j := jobs["pre-upgrade"]
			if (j != nil) != tc.crdUpgrade {
				t.Fatalf("pre-upgrade hook rendered: %v, want %v", j != nil, tc.crdUpgrade)
			}
			if j == nil {
				return
			}
			var cm corev1.ConfigMap
			convert(t, find(t, objs, "ConfigMap", j.Spec.Template.Spec.Volumes[0].ConfigMap.Name), &cm)
			if got := cm.Data["wasmkube.io_shims.yaml"]; got != string(crd) {
				t.Errorf("the pre-upgrade hook's ConfigMap does not hold crds/wasmkube.io_shims.yaml byte for byte (%d bytes, want %d)", len(got), len(crd))
			}
		})
	}
}

// deploymentName is the manager Deployment's name for a golden case (custom.yaml sets fullnameOverride).
func deploymentName(files []string) string {
	for _, f := range files {
		if f == "custom.yaml" {
			return "wk-manager"
		}
	}
	return "wasmkube-manager"
}

// generatedRules reads the rules of kind from controller-gen's config/rbac/role.yaml.
func generatedRules(t testing.TB, kind string) []rbacv1.PolicyRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseObjects(string(b))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == kind {
			var r rbacv1.ClusterRole
			convert(t, o, &r)
			return r.Rules
		}
	}
	t.Fatalf("config/rbac/role.yaml has no %s", kind)
	return nil
}

func TestRBACIsTheGeneratedRBAC(t *testing.T) {
	t.Parallel()
	for name, tc := range goldenCases {
		objs := mustRender(t, tc.files, tc.sets...)
		d := renderedDeployment(t, objs, deploymentName(tc.files))
		ns, _ := argValue(d.Spec.Template.Spec.Containers[0].Args, "namespace")
		sa := d.Spec.Template.Spec.ServiceAccountName
		prefix := strings.TrimSuffix(deploymentName(tc.files), "-manager")

		var cr rbacv1.ClusterRole
		convert(t, find(t, objs, "ClusterRole", prefix+"-manager"), &cr)
		if !reflect.DeepEqual(cr.Rules, generatedRules(t, "ClusterRole")) {
			t.Errorf("%s: the ClusterRole's rules differ from config/rbac/role.yaml (run `make generate`)", name)
		}
		var role rbacv1.Role
		convert(t, find(t, objs, "Role", prefix+"-manager"), &role)
		if !reflect.DeepEqual(role.Rules, generatedRules(t, "Role")) {
			t.Errorf("%s: the Role's rules differ from config/rbac/role.yaml (run `make generate`)", name)
		}
		if role.Namespace != ns {
			t.Errorf("%s: Role in namespace %q, but the manager's --namespace is %q", name, role.Namespace, ns)
		}
		var crb rbacv1.ClusterRoleBinding
		convert(t, find(t, objs, "ClusterRoleBinding", prefix+"-manager"), &crb)
		var rb rbacv1.RoleBinding
		convert(t, find(t, objs, "RoleBinding", prefix+"-manager"), &rb)
		want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: releaseNamespace}}
		if !reflect.DeepEqual(crb.Subjects, want) || !reflect.DeepEqual(rb.Subjects, want) || rb.Namespace != ns {
			t.Errorf("%s: bindings %+v / %+v (RoleBinding in %q), want the manager's ServiceAccount %+v in %q",
				name, crb.Subjects, rb.Subjects, rb.Namespace, want, ns)
		}
	}
}

func TestInstallerNamespace(t *testing.T) {
	t.Parallel()
	objs := mustRender(t, nil)
	d := renderedDeployment(t, objs, "wasmkube-manager")
	ns, _ := argValue(d.Spec.Template.Spec.Containers[0].Args, "namespace")
	n := find(t, objs, "Namespace", ns)
	if got := n.GetLabels()["pod-security.kubernetes.io/enforce"]; got != "privileged" {
		t.Errorf("installer namespace %s: pod-security.kubernetes.io/enforce=%q, want privileged", ns, got)
	}
	if ns == releaseNamespace {
		t.Errorf("the installer namespace is the release namespace %s", ns)
	}
	for _, o := range mustRender(t, nil, "installer.namespace.create=false", "installer.namespace.name=ops") {
		if o.GetKind() == "Namespace" {
			t.Errorf("installer.namespace.create=false still renders Namespace %s", o.GetName())
		}
	}
}

// shims returns the rendered Shims by name.
func shims(objs []*unstructured.Unstructured) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, o := range objs {
		if o.GetKind() == "Shim" {
			spec, _, _ := unstructured.NestedMap(o.Object, "spec")
			out[o.GetName()] = spec
		}
	}
	return out
}

func TestDefaultShims(t *testing.T) {
	t.Parallel()
	def := shims(mustRender(t, nil))
	if len(def) != 1 || def["wazero"] == nil {
		t.Fatalf("default Shims = %v, want only wazero", def)
	}
	if src, _, _ := unstructured.NestedString(def["wazero"], "source", "builtin"); src != "wazero" {
		t.Errorf("wazero source = %v, want builtin wazero", def["wazero"]["source"])
	}
	if _, ok := def["wazero"]["nodeSelector"]; ok {
		t.Errorf("default wazero has a nodeSelector %v; without autoEnable only annotated nodes are selected", def["wazero"]["nodeSelector"])
	}

	auto := shims(mustRender(t, nil, "autoEnable=true"))
	if sel, ok := auto["wazero"]["nodeSelector"]; !ok || !reflect.DeepEqual(sel, map[string]any{}) {
		t.Errorf("autoEnable: wazero nodeSelector = %v (present %v), want {}", sel, ok)
	}
	custom := shims(mustRender(t, []string{"custom.yaml"}))
	if len(custom) != 3 || custom["extra"] != nil {
		t.Errorf("custom Shims = %v, want the three enabled ones", custom)
	}
	if sel := custom["spin"]["nodeSelector"]; !reflect.DeepEqual(sel, map[string]any{"pool": "wasm"}) {
		t.Errorf("autoEnable replaced spin's own nodeSelector: %v", sel)
	}
}

func TestChartCRDsAreGenerated(t *testing.T) {
	t.Parallel()
	gen, err := filepath.Glob(filepath.Join(repoRoot(t), "config", "crd", "bases", "*.yaml"))
	if err != nil || len(gen) == 0 {
		t.Fatalf("no generated CRDs (err %v)", err)
	}
	for _, g := range gen {
		want, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartDir(t), "crds", filepath.Base(g)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("charts/wasmkube/crds/%s is not a copy of %s (err %v): run `make generate`", filepath.Base(g), g, err)
		}
	}
}

// TestInstallerConfig checks that every golden rendering mounts the installer config ConfigMap at the
// path of --installer-config and that the manager's own parser accepts the file with the values'
// settings: the defaults keep the Job contract (every taint, system-node-critical).
func TestInstallerConfig(t *testing.T) {
	t.Parallel()
	for name, tc := range goldenCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			objs := mustRender(t, tc.files, tc.sets...)
			d := renderedDeployment(t, objs, deploymentName(tc.files))
			pod := d.Spec.Template.Spec
			file, ok := argValue(pod.Containers[0].Args, "installer-config")
			if !ok {
				t.Fatal("the manager has no --installer-config argument")
			}
			cmName := strings.TrimSuffix(d.Name, "-manager") + "-installer-config"
			var mounted bool
			for _, m := range pod.Containers[0].VolumeMounts {
				for _, v := range pod.Volumes {
					if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == cmName && filepath.Dir(file) == m.MountPath && m.ReadOnly {
						mounted = true
					}
				}
			}
			if !mounted {
				t.Fatalf("ConfigMap %s is not mounted read-only at %s", cmName, filepath.Dir(file))
			}
			var cm corev1.ConfigMap
			convert(t, find(t, objs, "ConfigMap", cmName), &cm)
			data, ok := cm.Data[filepath.Base(file)]
			if !ok {
				t.Fatalf("ConfigMap %s has no key %s", cmName, filepath.Base(file))
			}
			got, err := controller.ParseInstallerConfig([]byte(data))
			if err != nil {
				t.Fatalf("the manager refuses the rendered installer config: %v\n%s", err, data)
			}
			want := controller.InstallerConfig{Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
				PriorityClassName: "system-node-critical", NodeOverrides: []controller.NodeOverride{},
				ImagePullSecrets: []corev1.LocalObjectReference{},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}}
			if name == "custom" {
				want = controller.InstallerConfig{
					Tolerations: []corev1.Toleration{{Key: "wasmkube.io/dedicated", Operator: corev1.TolerationOpEqual,
						Value: "wasm", Effect: corev1.TaintEffectNoSchedule}},
					PriorityClassName: "wasmkube-installer",
					NodeOverrides: []controller.NodeOverride{
						{NodeSelector: map[string]string{"wasmkube.io/distro": "k3s"},
							ContainerdConfig: "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl",
							CRISocket:        "/run/k3s/containerd/containerd.sock"},
						{NodeSelector: map[string]string{"pool": "legacy", "kubernetes.io/arch": "arm64"}, Restart: "none"},
					},
					ImagePullSecrets: []corev1.LocalObjectReference{{Name: "installer-regcred"}},
					Proxy: controller.Proxy{HTTPProxy: "http://proxy.example.com:3128", HTTPSProxy: "http://proxy.example.com:3128",
						NoProxy: "10.0.0.0/8,.cluster.local"},
					Resources: corev1.ResourceRequirements{
						Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("48Mi")},
						Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("384Mi")}},
				}
			}
			if !equality.Semantic.DeepEqual(got, want) {
				t.Fatalf("rendered installer config = %+v, want %+v", got, want)
			}
			if d.Spec.Template.Annotations["checksum/installer-config"] == "" {
				t.Error("the manager pod has no checksum/installer-config annotation (a changed config would not restart it)")
			}
		})
	}
}

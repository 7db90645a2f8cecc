package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/controller"
	"github.com/wasmkube/wasmkube/internal/lifecycle"
	"github.com/wasmkube/wasmkube/internal/rollout"
	"github.com/wasmkube/wasmkube/internal/testenv"
)

// apiServer is a real kube-apiserver + etcd (envtest) with a kubeconfig file for helm.
type apiServer struct {
	client     client.Client
	kubeconfig string
}

func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	env := &envtest.Environment{BinaryAssetsDirectory: testenv.EnvtestAssets(t)}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	admin, err := env.AddUser(envtest.User{Name: "helm-admin", Groups: []string{"system:masters"}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	scheme, err := lifecycle.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &apiServer{client: c, kubeconfig: path}
}

// helm runs helm against the API server.
func (a *apiServer) helm(t *testing.T, args ...string) helmResult {
	t.Helper()
	return runHelm(t, append(args, "--kubeconfig", a.kubeconfig)...)
}

// TestInstall installs the chart into a real API server, checks what it created, proves with
// SubjectAccessReviews that the manager's ServiceAccount can do what it needs and no more for secrets
// and pods/exec, upgrades to the filled-in example Shims, and uninstalls.
func TestInstall(t *testing.T) {
	api := startAPIServer(t)
	ctx := context.Background()
	c := api.client

	// The release namespace enforces the restricted Pod Security level: the manager must fit it.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace,
		Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}); err != nil {
		t.Fatal(err)
	}
	if r := api.helm(t, "install", releaseName, chartDir(t), "--namespace", releaseNamespace); r.err != nil {
		t.Fatal(r.err)
	}

	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, client.ObjectKey{Name: "shims.wasmkube.io"}, &crd); err != nil {
		t.Fatalf("the Shim CRD: %v", err)
	}
	established := false
	for _, cond := range crd.Status.Conditions {
		established = established || (cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue)
	}
	if !established {
		t.Errorf("the Shim CRD is not established: %+v", crd.Status.Conditions)
	}
	var shim v1alpha1.Shim
	if err := c.Get(ctx, client.ObjectKey{Name: "wazero"}, &shim); err != nil {
		t.Fatalf("the default wazero Shim: %v", err)
	}
	if shim.Spec.Source.Builtin != "wazero" || shim.Spec.RuntimeType != "io.containerd.wazero.v1" || shim.Spec.NodeSelector != nil {
		t.Errorf("wazero Shim spec = %+v, want builtin wazero, io.containerd.wazero.v1, nodeSelector null", shim.Spec)
	}
	var dep appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "wasmkube-manager"}, &dep); err != nil {
		t.Fatalf("the manager Deployment: %v", err)
	}
	installerNS := "wasmkube-installer"
	var ns corev1.Namespace
	if err := c.Get(ctx, client.ObjectKey{Name: installerNS}, &ns); err != nil {
		t.Fatalf("the installer namespace: %v", err)
	}
	if ns.Labels["pod-security.kubernetes.io/enforce"] != "privileged" {
		t.Errorf("installer namespace labels = %v, want pod-security.kubernetes.io/enforce=privileged", ns.Labels)
	}
	for _, obj := range []client.Object{
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "wasmkube-manager"}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "wasmkube-manager"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: installerNS, Name: "wasmkube-manager"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: installerNS, Name: "wasmkube-manager"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "wasmkube"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "wasmkube-metrics"}},
	} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Errorf("%T %s: %v", obj, client.ObjectKeyFromObject(obj), err)
		}
	}

	t.Run("access", func(t *testing.T) {
		checkAccess(t, c, "system:serviceaccount:"+releaseNamespace+":wasmkube", installerNS)
	})
	t.Run("pod security", func(t *testing.T) { checkPodSecurity(t, c, &dep, installerNS) })
	// This API server has no job controller, so helm would wait for the hook Jobs in vain: upgrade and
	// uninstall run with --no-hooks, and the hooks' RBAC and pods are checked here instead (the
	// end-to-end test runs them for real).
	t.Run("hooks", func(t *testing.T) { checkHooks(t, c) })

	// The filled-in examples pass the API server's validation of Shims.
	if r := api.helm(t, "upgrade", releaseName, chartDir(t), "--namespace", releaseNamespace, "--no-hooks",
		"--values", filepath.Join("testdata", "values", "examples.yaml")); r.err != nil {
		t.Fatal(r.err)
	}
	for _, name := range []string{"spin", "wasmtime", "wazero"} {
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &v1alpha1.Shim{}); err != nil {
			t.Errorf("Shim %s after the upgrade: %v", name, err)
		}
	}
	// What the schema cannot see, the CRD's validation refuses, and helm reports its message.
	dup := "shims.wasmtime.spec.source.http.platforms[1].arch=amd64"
	r := api.helm(t, "upgrade", releaseName, chartDir(t), "--namespace", releaseNamespace, "--no-hooks",
		"--values", filepath.Join("testdata", "values", "examples.yaml"), "--set", dup)
	if r.err == nil || !strings.Contains(r.stderr, "must not list the same os/arch twice") {
		t.Errorf("upgrade with a duplicate platform: err %v, want the CRD's message about the same os/arch twice", r.err)
	}

	if r := api.helm(t, "uninstall", releaseName, "--namespace", releaseNamespace, "--no-hooks"); r.err != nil {
		t.Fatal(r.err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(&dep), &appsv1.Deployment{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the manager Deployment outlived helm uninstall: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "shims.wasmkube.io"}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
		t.Errorf("helm uninstall removed the CRD (Helm keeps crds/, and with it users' Shims): %v", err)
	}
}

// access is one SubjectAccessReview question.
type access struct {
	verb, group, resource, subresource, namespace string
}

func (a access) String() string {
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.group != "" {
		r += "." + a.group
	}
	ns := a.namespace
	if ns == "" {
		ns = "(cluster-wide)"
	}
	return fmt.Sprintf("%s %s in %s", a.verb, r, ns)
}

// checkAccess asks the API server's authorizer, through SubjectAccessReviews, what user may do.
func checkAccess(t *testing.T, c client.Client, user, installerNS string) {
	needs := []access{
		{"get", "", "nodes", "", ""}, {"list", "", "nodes", "", ""}, {"watch", "", "nodes", "", ""}, {"patch", "", "nodes", "", ""},
		{"get", "wasmkube.io", "shims", "", ""}, {"list", "wasmkube.io", "shims", "", ""}, {"watch", "wasmkube.io", "shims", "", ""},
		{"update", "wasmkube.io", "shims", "", ""}, {"patch", "wasmkube.io", "shims", "status", ""}, {"update", "wasmkube.io", "shims", "finalizers", ""},
		{"create", "node.k8s.io", "runtimeclasses", "", ""}, {"patch", "node.k8s.io", "runtimeclasses", "", ""}, {"delete", "node.k8s.io", "runtimeclasses", "", ""},
		{"create", "events.k8s.io", "events", "", "default"},
		{"create", "batch", "jobs", "", installerNS}, {"delete", "batch", "jobs", "", installerNS}, {"watch", "batch", "jobs", "", installerNS},
		{"list", "", "pods", "", installerNS}, {"watch", "", "pods", "", installerNS},
		{"get", "", "secrets", "", installerNS},
		{"create", "coordination.k8s.io", "leases", "", installerNS}, {"update", "coordination.k8s.io", "leases", "", installerNS},
	}
	refused := []access{
		// Secrets: only get, only in the installer namespace.
		{"get", "", "secrets", "", ""}, {"list", "", "secrets", "", ""}, {"watch", "", "secrets", "", ""},
		{"get", "", "secrets", "", "default"}, {"get", "", "secrets", "", "kube-system"}, {"get", "", "secrets", "", releaseNamespace},
		{"list", "", "secrets", "", installerNS}, {"watch", "", "secrets", "", installerNS}, {"create", "", "secrets", "", installerNS},
		// No way into a running container, and no pods of its own making.
		{"create", "", "pods", "exec", installerNS}, {"create", "", "pods", "exec", ""}, {"get", "", "pods", "exec", "kube-system"},
		{"create", "", "pods", "attach", installerNS}, {"create", "", "pods", "portforward", installerNS},
		{"create", "", "pods", "", installerNS}, {"delete", "", "pods", "", installerNS}, {"list", "", "pods", "", "kube-system"},
		{"get", "", "nodes", "proxy", ""},
		// Jobs only where the installer runs.
		{"create", "batch", "jobs", "", "default"}, {"create", "batch", "jobs", "", "kube-system"},
		// Nodes are patched, never deleted or replaced.
		{"delete", "", "nodes", "", ""}, {"update", "", "nodes", "", ""},
		// No privilege escalation.
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""}, {"bind", "rbac.authorization.k8s.io", "clusterroles", "", ""},
		{"escalate", "rbac.authorization.k8s.io", "roles", "", installerNS}, {"create", "", "serviceaccounts", "token", installerNS},
		{"update", "apiextensions.k8s.io", "customresourcedefinitions", "", ""}, {"delete", "wasmkube.io", "shims", "", ""},
		{"get", "", "configmaps", "", "kube-system"},
	}
	ask := func(a access) bool {
		t.Helper()
		return allowed(t, c, user, a, "")
	}
	for _, a := range needs {
		if !ask(a) {
			t.Errorf("the manager may not %s; it needs to", a)
		}
	}
	for _, a := range refused {
		if ask(a) {
			t.Errorf("the manager may %s; it must not", a)
		}
	}
}

// allowed asks the API server's authorizer, through a SubjectAccessReview, whether a ServiceAccount
// user may do a (on the object called name, when not empty).
func allowed(t *testing.T, c client.Client, user string, a access, name string) bool {
	t.Helper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNamespace, "system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Namespace: a.namespace, Name: name,
		},
	}}
	if err := c.Create(context.Background(), sar); err != nil {
		t.Fatalf("SubjectAccessReview %s: %v", a, err)
	}
	return sar.Status.Allowed
}

// checkPodSecurity creates pods with a server-side dry run, so Pod Security admission judges them: the
// manager's pod passes "restricted" in the release namespace, and the manager's real installer Job pod
// passes only in the chart's installer namespace.
func checkPodSecurity(t *testing.T, c client.Client, dep *appsv1.Deployment, installerNS string) {
	ctx := context.Background()
	dryRun := func(ns string, spec corev1.PodSpec) error {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "dry-run-", Namespace: ns}, Spec: spec}
		return c.Create(ctx, pod, client.DryRunAll)
	}
	if err := dryRun(releaseNamespace, dep.Spec.Template.Spec); err != nil {
		t.Errorf("the manager's pod does not meet the restricted Pod Security level: %v", err)
	}

	args := dep.Spec.Template.Spec.Containers[0].Args
	image, _ := argValue(args, "installer-image")
	cfg := controller.DefaultJobConfig()
	cfg.Namespace, cfg.Image = installerNS, image
	shim := &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: "wazero", UID: "uid"},
		Spec: v1alpha1.ShimSpec{RuntimeType: "io.containerd.wazero.v1", Source: v1alpha1.ShimSource{Builtin: "wazero"}}}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	job, err := controller.BuildJob(cfg, shim, node, rollout.Install, "hash")
	if err != nil {
		t.Fatal(err)
	}
	if err := dryRun(installerNS, job.Spec.Template.Spec); err != nil {
		t.Errorf("the installer Job's pod is refused in the installer namespace %s: %v", installerNS, err)
	}
	err = dryRun(releaseNamespace, job.Spec.Template.Spec)
	if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
		t.Errorf("the installer Job's pod in the restricted release namespace: err %v, want a PodSecurity violation (else this check proves nothing)", err)
	}
}

// checkHooks creates the hooks' ServiceAccounts and RBAC as rendered, asks the API server's authorizer
// what each hook may do (what it needs, and nothing that would let it change nodes or workloads), and
// has Pod Security admission judge the hook pods in the restricted release namespace.
func checkHooks(t *testing.T, c client.Client) {
	ctx := context.Background()
	objs := mustRender(t, nil)
	for _, o := range objs {
		if o.GetAnnotations()["helm.sh/hook"] == "" {
			continue
		}
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding":
			if err := c.Create(ctx, o.DeepCopy()); err != nil {
				t.Fatalf("create hook %s %s: %v", o.GetKind(), o.GetName(), err)
			}
			t.Cleanup(func() { _ = c.Delete(ctx, o.DeepCopy()) })
		}
	}
	// one is a question about the object called name ("" for any).
	type one struct {
		access
		name string
	}
	shims := func(verb, sub string) one { return one{access{verb, "wasmkube.io", "shims", sub, ""}, ""} }
	crd := func(verb, name string) one {
		return one{access{verb, "apiextensions.k8s.io", "customresourcedefinitions", "", ""}, name}
	}
	for name, rules := range map[string]struct{ needs, refused []one }{
		"wasmkube-uninstall": {
			needs: []one{shims("list", ""), shims("watch", ""), shims("delete", ""), {access{"list", "", "nodes", "", ""}, ""}},
			refused: []one{shims("patch", ""), shims("update", "finalizers"), {access{"patch", "", "nodes", "", ""}, ""},
				{access{"create", "batch", "jobs", "", releaseNamespace}, ""}, {access{"get", "", "secrets", "", releaseNamespace}, ""}},
		},
		"wasmkube-crd-upgrade": {
			needs:   []one{crd("get", "shims.wasmkube.io"), crd("update", "shims.wasmkube.io")},
			refused: []one{crd("update", "certificates.cert-manager.io"), crd("create", ""), crd("delete", "shims.wasmkube.io"), shims("list", "")},
		},
	} {
		user := "system:serviceaccount:" + releaseNamespace + ":" + name
		for _, a := range rules.needs {
			// The authorizer sees new RBAC objects through an informer: give it a moment.
			err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
				return allowed(t, c, user, a.access, a.name), nil
			})
			if err != nil {
				t.Errorf("%s may not %s %s; it needs to", name, a.access, a.name)
			}
		}
		for _, a := range rules.refused {
			if allowed(t, c, user, a.access, a.name) {
				t.Errorf("%s may %s %s; it must not", name, a.access, a.name)
			}
		}
	}
	for _, j := range hookJobs(t, objs) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "dry-run-", Namespace: releaseNamespace}, Spec: j.Spec.Template.Spec}
		if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
			t.Errorf("the %s hook's pod does not meet the restricted Pod Security level: %v", j.Annotations["helm.sh/hook"], err)
		}
	}
}

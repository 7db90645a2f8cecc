package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/testenv"
)

var crdDir = filepath.Join("..", "..", "config", "crd", "bases")

// apiServer starts a real kube-apiserver + etcd with the Shim CRD installed.
func apiServer(t *testing.T) client.Client {
	t.Helper()
	env := &envtest.Environment{BinaryAssetsDirectory: testenv.EnvtestAssets(t), CRDDirectoryPaths: []string{crdDir},
		ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLifecycle shares one API server between the hooks' scenarios, which run one after another.
func TestLifecycle(t *testing.T) {
	c := apiServer(t)
	t.Run("DeleteShimsWaitsForTheManager", func(t *testing.T) { testDeleteShimsWaits(t, c) })
	t.Run("DeleteShimsTimeoutSaysWhatIsLeft", func(t *testing.T) { testDeleteShimsTimeout(t, c) })
	t.Run("ApplyCRDsReplacesTheSpec", func(t *testing.T) { testApplyCRDs(t, c) })
}

func shim(name string) *v1alpha1.Shim {
	return &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: name, Finalizers: []string{v1alpha1.Finalizer}},
		Spec: v1alpha1.ShimSpec{RuntimeType: "io.containerd." + name + ".v1", Source: v1alpha1.ShimSource{Builtin: "wazero"}}}
}

func node(t *testing.T, c client.Client, name string, labels map[string]string) {
	t.Helper()
	if err := c.Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}) })
}

// release stands in for the manager: once a Shim is being deleted, it removes the Shim's node labels
// after a while and then its finalizer.
func release(ctx context.Context, c client.Client, name string, after time.Duration) {
	for ctx.Err() == nil {
		var s v1alpha1.Shim
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &s); err == nil && s.DeletionTimestamp != nil {
			time.Sleep(after)
			var nodes corev1.NodeList
			_ = c.List(ctx, &nodes, client.HasLabels{v1alpha1.NodeStateLabel(name)})
			for _, n := range nodes.Items {
				patch := []byte(`{"metadata":{"labels":{"` + v1alpha1.NodeStateLabel(name) + `":null}}}`)
				_ = c.Patch(ctx, &n, client.RawPatch(types.MergePatchType, patch))
			}
			_ = c.Patch(ctx, &s, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The positive control: with a manager that finishes, DeleteShims returns once every Shim is gone.
func testDeleteShimsWaits(t *testing.T, c client.Client) {
	ctx := context.Background()
	node(t, c, "w1", map[string]string{v1alpha1.NodeStateLabel("alpha"): "ready"})
	var wg sync.WaitGroup
	mctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	for _, name := range []string{"alpha", "beta"} {
		if err := c.Create(ctx, shim(name)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); release(mctx, c, name, 500*time.Millisecond) }()
	}
	var out bytes.Buffer
	start := time.Now()
	err := DeleteShims(ctx, c, DeleteOptions{Timeout: 30 * time.Second, Interval: 100 * time.Millisecond, Out: &out})
	if err != nil {
		t.Fatalf("DeleteShims: %v\n%s", err, out.String())
	}
	var left v1alpha1.ShimList
	if err := c.List(ctx, &left); err != nil || len(left.Items) != 0 {
		t.Fatalf("Shims left after DeleteShims returned: %v %v", left.Items, err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("DeleteShims returned after %s, before the manager released the Shims", d)
	}
	if !strings.Contains(out.String(), "deleted 2 Shims") || !strings.Contains(out.String(), "every Shim is uninstalled") {
		t.Errorf("output:\n%s", out.String())
	}
}

// The attack: a manager that cannot finish (here: none at all) makes DeleteShims fail after its
// timeout, naming the Shims, their nodes by state and their Degraded condition.
func testDeleteShimsTimeout(t *testing.T, c client.Client) {
	ctx := context.Background()
	node(t, c, "t1", map[string]string{v1alpha1.NodeStateLabel("gamma"): "failed"})
	node(t, c, "t2", map[string]string{v1alpha1.NodeStateLabel("gamma"): "uninstalling"})
	s := shim("gamma")
	if err := c.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	s.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonNodesFailed, Message: "1 nodes failed (t1)", LastTransitionTime: metav1.Now()}}
	if err := c.Status().Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Patch(ctx, s, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
	})
	var out bytes.Buffer
	start := time.Now()
	err := DeleteShims(ctx, c, DeleteOptions{Timeout: time.Second, Interval: 100 * time.Millisecond, Out: &out})
	if !errors.Is(err, ErrShimsLeft) {
		t.Fatalf("DeleteShims = %v, want ErrShimsLeft\n%s", err, out.String())
	}
	if d := time.Since(start); d < time.Second || d > 10*time.Second {
		t.Errorf("DeleteShims gave up after %s, want about its 1 s timeout", d)
	}
	for _, want := range []string{"gamma (2 nodes: 1 failed, 1 uninstalling)", "helm uninstall again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	for _, want := range []string{"Shim gamma:", "failed: t1", "uninstalling: t2", "Degraded: NodesFailed: 1 nodes failed (t1)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func testApplyCRDs(t *testing.T, c client.Client) {
	ctx := context.Background()
	file := filepath.Join(crdDir, "wasmkube.io_shims.yaml")
	want, err := readCRDs(file)
	if err != nil || len(want) != 1 {
		t.Fatalf("read %s: %v %v", file, want, err)
	}
	// An older CRD: a field of the schema the new one lacks, and a description the new one changed.
	var crd apiextensionsv1.CustomResourceDefinition
	if err := c.Get(ctx, client.ObjectKey{Name: want[0].Name}, &crd); err != nil {
		t.Fatal(err)
	}
	props := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	props.Properties["legacyField"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = props
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Description = "old"
	if err := c.Update(ctx, &crd); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shims.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := ApplyCRDs(ctx, c, dir, &out); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: want[0].Name}, &crd); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(crd.Spec.Versions, want[0].Spec.Versions) {
		t.Error("the served CRD's versions differ from the applied file")
	}
	if _, ok := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["legacyField"]; ok {
		t.Error("a field the new CRD dropped is still served")
	}

	// Refused: other objects in the directory, and a CRD the cluster does not have.
	other := t.TempDir()
	ns, _ := yaml.Marshal(corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: "x"}})
	if err := os.WriteFile(filepath.Join(other, "ns.yaml"), ns, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ApplyCRDs(ctx, c, other, &out); err == nil || !strings.Contains(err.Error(), "holds a Namespace x; only apiextensions.k8s.io/v1 CustomResourceDefinitions") {
		t.Errorf("ApplyCRDs(a Namespace) = %v", err)
	}
	missing := t.TempDir()
	renamed := strings.ReplaceAll(string(data), "shims.wasmkube.io", "widgets.wasmkube.io")
	renamed = strings.ReplaceAll(renamed, "plural: shims", "plural: widgets")
	if err := os.WriteFile(filepath.Join(missing, "w.yaml"), []byte(renamed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ApplyCRDs(ctx, c, missing, &out); err == nil || !strings.Contains(err.Error(), "widgets.wasmkube.io is not installed") {
		t.Errorf("ApplyCRDs(a CRD the cluster lacks) = %v", err)
	}
}

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/wasmkube/wasmkube/images"
	"github.com/wasmkube/wasmkube/test/cluster"
)

const (
	// Registry and Tag name the images the e2e builds; the node has them, nothing is pulled.
	Registry = "wasmkube.test"
	Tag      = "e2e"
	// Release and Namespace are the helm release and its namespace.
	Release   = "wasmkube"
	Namespace = "wasmkube-system"
)

// ImageRef returns the reference of one of wasmkube's images as built by BuildImages.
func ImageRef(image string) string { return Registry + "/" + image + ":" + Tag }

// ModuleDir returns the root of the wasmkube module, found upwards from the working directory.
func ModuleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find go.mod: not inside the wasmkube module; run from the repository")
		}
		dir = parent
	}
}

// BuildImages builds every wasmkube image for linux/<host arch> and writes them under outDir. It
// returns the docker-save tarball of each image, by reference.
func BuildImages(ctx context.Context, moduleDir, outDir string, progress io.Writer) (map[string]string, error) {
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	b := images.Builder{Compiler: images.Compiler{ModuleDir: moduleDir}, Platforms: []v1.Platform{platform},
		WorkDir: filepath.Join(outDir, "work")}
	tarballs := map[string]string{}
	for _, def := range images.Definitions() {
		start := time.Now()
		built, err := b.Build(ctx, def)
		if err != nil {
			return nil, fmt.Errorf("build image %s: %w", def.Name, err)
		}
		ref, err := name.NewTag(ImageRef(def.Name), name.StrictValidation)
		if err != nil {
			return nil, err
		}
		out, err := images.Write(outDir, built, ref)
		if err != nil {
			return nil, fmt.Errorf("write image %s: %w", def.Name, err)
		}
		tb, ok := out.Tarballs[platform.OS+"/"+platform.Architecture]
		if !ok {
			return nil, fmt.Errorf("image %s: no tarball for %s/%s", def.Name, platform.OS, platform.Architecture)
		}
		tarballs[ref.String()] = tb
		fmt.Fprintf(progress, "built %s in %s\n", ref, time.Since(start).Round(time.Millisecond))
	}
	return tarballs, nil
}

// Overrides are the installer's host paths on a local cluster (test/cluster): everything stays under
// the cluster's host directory.
type Overrides struct {
	ContainerdConfig, CRISocket, ShimDir, StateFile string
}

// LocalOverrides returns the overrides for a local cluster with layout l.
func LocalOverrides(l cluster.Layout) *Overrides {
	opt := filepath.Join(l.HostRoot(), "opt", "wasmkube")
	return &Overrides{ContainerdConfig: l.ContainerdConfig(), CRISocket: l.CRISocket(),
		ShimDir: filepath.Join(opt, "bin"), StateFile: filepath.Join(opt, "state.json")}
}

// InstallArgs returns the helm arguments that install or upgrade the release from chart.
func InstallArgs(chart string, o *Overrides) []string {
	return append([]string{"upgrade", "--install", Release, chart, "--namespace", Namespace, "--create-namespace"}, HelmValues(o)...)
}

// HelmValues returns the --set arguments that point the chart at the e2e images and the overrides.
func HelmValues(o *Overrides) []string {
	args := []string{
		"--set", "image.repository=" + Registry + "/" + images.ManagerName, "--set", "image.tag=" + Tag,
		"--set", "image.pullPolicy=Never",
		"--set", "installer.image.repository=" + Registry + "/" + images.NodeInstallerName,
		"--set", "installer.image.tag=" + Tag, "--set", "installer.image.pullPolicy=Never",
		"--set", "manager.logFormat=text",
	}
	if o != nil {
		args = append(args,
			"--set", "installer.overrides.containerdConfig="+o.ContainerdConfig,
			"--set", "installer.overrides.criSocket="+o.CRISocket,
			"--set", "installer.overrides.shimDir="+o.ShimDir,
			"--set", "installer.overrides.stateFile="+o.StateFile,
			"--set", "installer.overrides.restart=signal")
	}
	return args
}

// Helm runs helm against kubeconfig and returns its combined output.
func Helm(ctx context.Context, helm, kubeconfig string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, helm, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %v: %w\n%s", args, err, out.String())
	}
	return out.String(), nil
}

// WaitManager waits until the manager Deployment of the release has an available replica.
func WaitManager(ctx context.Context, client kubernetes.Interface, timeout time.Duration) error {
	var last *appsv1.Deployment
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := client.AppsV1().Deployments(Namespace).List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) == 0 {
			return false, nil
		}
		last = &list.Items[0]
		return last.Status.AvailableReplicas > 0, nil
	})
	if err != nil {
		if last != nil {
			return fmt.Errorf("wait for the manager deployment %s/%s: %w (status %+v)", Namespace, last.Name, err, last.Status)
		}
		return fmt.Errorf("wait for the manager deployment in %s: %w", Namespace, err)
	}
	return nil
}

package lifecycle

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ApplyCRDs makes every CustomResourceDefinition in the YAML files of dir (the chart's crds/, mounted
// from a ConfigMap) the one the cluster serves: the spec is replaced as a whole, so a field the new
// version drops is dropped, and labels and annotations are added. It then waits until each is
// established. A CRD missing from the cluster is an error (it was installed with helm --skip-crds, so
// it is the user's to manage), and so is any other kind of object in the files.
func ApplyCRDs(ctx context.Context, c client.Client, dir string, out io.Writer) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		objs, err := readCRDs(f)
		if err != nil {
			return err
		}
		crds = append(crds, objs...)
	}
	if len(crds) == 0 {
		return fmt.Errorf("no CustomResourceDefinition in %s", dir)
	}
	for _, want := range crds {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, &crd); err != nil {
				return err
			}
			crd.Spec = want.Spec
			crd.Labels = merged(crd.Labels, want.Labels)
			crd.Annotations = merged(crd.Annotations, want.Annotations)
			return c.Update(ctx, &crd)
		})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("CustomResourceDefinition %s is not installed; helm installs it from crds/ on the first install unless --skip-crds was given, and then it is yours to apply (and crds.upgrade should be false)", want.Name)
		}
		if err != nil {
			return fmt.Errorf("update CustomResourceDefinition %s: %w", want.Name, err)
		}
		if err := waitEstablished(ctx, c, want.Name); err != nil {
			return err
		}
		fmt.Fprintf(out, "updated CustomResourceDefinition %s\n", want.Name)
	}
	return nil
}

func merged(into, from map[string]string) map[string]string {
	if len(from) == 0 {
		return into
	}
	if into == nil {
		into = map[string]string{}
	}
	maps.Copy(into, from)
	return into
}

// readCRDs decodes the CustomResourceDefinitions of a multi-document YAML file.
func readCRDs(file string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	var out []*apiextensionsv1.CustomResourceDefinition
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := dec.Decode(crd); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		if crd.Kind == "" && crd.Name == "" {
			continue // an empty document
		}
		if crd.APIVersion != apiextensionsv1.SchemeGroupVersion.String() || crd.Kind != "CustomResourceDefinition" {
			return nil, fmt.Errorf("%s holds a %s %s; only %s CustomResourceDefinitions are applied", file, crd.Kind, crd.Name, apiextensionsv1.SchemeGroupVersion)
		}
		out = append(out, crd)
	}
}

// waitEstablished waits up to a minute for a CRD's Established condition.
func waitEstablished(ctx context.Context, c client.Client, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("wait for CustomResourceDefinition %s to be established: %w", name, err)
	}
	return nil
}

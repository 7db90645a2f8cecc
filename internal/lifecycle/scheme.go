package lifecycle

import (
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// NewScheme returns the scheme the hooks' client needs: the built-in types, wasmkube.io/v1alpha1 and
// the CustomResourceDefinitions that ApplyCRDs writes.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []struct {
		what string
		add  func(*runtime.Scheme) error
	}{
		{"built-in types", clientgoscheme.AddToScheme},
		{"wasmkube.io/v1alpha1", v1alpha1.AddToScheme},
		{"apiextensions.k8s.io/v1", apiextensionsv1.AddToScheme},
	} {
		if err := add.add(s); err != nil {
			return nil, fmt.Errorf("register %s: %w", add.what, err)
		}
	}
	return s, nil
}

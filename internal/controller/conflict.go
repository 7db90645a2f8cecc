package controller

import (
	"context"
	"fmt"

	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// A handler and a RuntimeClass name belong to one Shim. A Shim that claims a handler or a
// RuntimeClass name another Shim holds is refused: Degraded with reason HandlerConflict or
// RuntimeClassConflict, a Warning Event, and nothing is installed for it (its uninstalls still run).
// A handler belongs to the Shim created first (handlers are immutable). A RuntimeClass name belongs to
// the Shim that controls the RuntimeClass of that name, or while none exists to the Shim created first;
// a RuntimeClass that no Shim controls is never adopted, changed or deleted.

// conflict is why a Shim may not have its handler or RuntimeClass name.
type conflict struct {
	reason, message string
}

// senior reports whether Shim a came before Shim b: created earlier, or in the same second with the
// smaller name.
func senior(a, b *v1alpha1.Shim) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

// findConflict returns the Shim's conflict, or nil when its handler and RuntimeClass name are its own.
func (r *ShimReconciler) findConflict(ctx context.Context, shim *v1alpha1.Shim) (*conflict, error) {
	var shims v1alpha1.ShimList
	if err := r.Client.List(ctx, &shims); err != nil {
		return nil, fmt.Errorf("list Shims to check Shim %s's handler and RuntimeClass: %w", shim.Name, err)
	}
	handler := rollout.Handler(shim)
	for i := range shims.Items {
		o := &shims.Items[i]
		if o.UID != shim.UID && rollout.Handler(o) == handler && senior(o, shim) {
			return &conflict{v1alpha1.ReasonHandlerConflict, fmt.Sprintf(
				"handler %s belongs to Shim %s, created before this one; nothing is installed for this Shim while that one exists (the handler is immutable: create a Shim with another spec.handler)",
				handler, o.Name)}, nil
		}
	}

	name := rollout.RuntimeClassName(shim)
	var rc nodev1.RuntimeClass
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &rc)
	switch {
	case apierrors.IsNotFound(err):
		for i := range shims.Items {
			o := &shims.Items[i]
			if o.UID != shim.UID && rollout.RuntimeClassName(o) == name && senior(o, shim) {
				return &conflict{v1alpha1.ReasonRuntimeClassConflict, fmt.Sprintf(
					"RuntimeClass %s belongs to Shim %s, created before this one; nothing is installed for this Shim: choose another spec.runtimeClass.name",
					name, o.Name)}, nil
			}
		}
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get RuntimeClass %s of Shim %s: %w", name, shim.Name, err)
	}
	return runtimeClassConflict(&rc, shim), nil
}

// runtimeClassConflict is the conflict an existing RuntimeClass of the Shim's name means, or nil when
// the Shim controls it.
func runtimeClassConflict(rc *nodev1.RuntimeClass, shim *v1alpha1.Shim) *conflict {
	if metav1.IsControlledBy(rc, shim) {
		return nil
	}
	if owner := metav1.GetControllerOf(rc); owner != nil && owner.Kind == "Shim" && owner.APIVersion == v1alpha1.GroupVersion.String() {
		return &conflict{v1alpha1.ReasonRuntimeClassConflict, fmt.Sprintf(
			"RuntimeClass %s belongs to Shim %s; nothing is installed for this Shim: choose another spec.runtimeClass.name",
			rc.Name, owner.Name)}
	}
	return &conflict{v1alpha1.ReasonRuntimeClassConflict, fmt.Sprintf(
		"RuntimeClass %s exists and is not managed by wasmkube, which never adopts, changes or deletes it; nothing is installed for this Shim: choose another spec.runtimeClass.name, or delete that RuntimeClass",
		rc.Name)}
}

// rivals maps a Shim to the other Shims that claim its handler or RuntimeClass name, so that one
// waiting for the other is reconciled when it changes or goes.
func (r *ShimReconciler) rivals(ctx context.Context, o client.Object) []reconcile.Request {
	shim, ok := o.(*v1alpha1.Shim)
	if !ok {
		return nil
	}
	return r.shimsClaiming(ctx, shim.UID, rollout.Handler(shim), rollout.RuntimeClassName(shim))
}

// shimsOfRuntimeClass maps a RuntimeClass to the Shims that control it or claim its name.
func (r *ShimReconciler) shimsOfRuntimeClass(ctx context.Context, o client.Object) []reconcile.Request {
	out := r.shimsClaiming(ctx, "", "", o.GetName())
	if owner := metav1.GetControllerOf(o); owner != nil && owner.Kind == "Shim" {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: owner.Name}})
	}
	return out
}

// shimsClaiming lists the Shims other than except that claim the handler or the RuntimeClass name.
func (r *ShimReconciler) shimsClaiming(ctx context.Context, except types.UID, handler, runtimeClass string) []reconcile.Request {
	var shims v1alpha1.ShimList
	if err := r.Client.List(ctx, &shims); err != nil {
		return nil // the cache is not ready yet; every Shim is reconciled once it is
	}
	var out []reconcile.Request
	for i := range shims.Items {
		s := &shims.Items[i]
		if s.UID != except && (rollout.Handler(s) == handler || rollout.RuntimeClassName(s) == runtimeClass) {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: s.Name}})
		}
	}
	return out
}

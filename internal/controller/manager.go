package controller

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// Options configure the manager.
type Options struct {
	Jobs JobConfig
	// HandlerDeadline bounds the wait for node.status.runtimeHandlers to list a new handler.
	HandlerDeadline time.Duration
	// MetricsAddr and ProbeAddr are the listen addresses of /metrics and /healthz+/readyz ("0" disables).
	MetricsAddr, ProbeAddr string
	// PprofAddr is the listen address of /debug/pprof ("" or "0" disables).
	PprofAddr string
	// LeaderElection runs the controller in one replica at a time, with a Lease in Jobs.Namespace.
	LeaderElection bool
	// Registry receives the manager's metrics (controller-runtime's metrics.Registry in production).
	Registry prometheus.Registerer
	// Platforms lists OCI image platforms (nil: RegistryPlatforms).
	Platforms PlatformLister
	// SkipNameValidation allows more than one manager per process (tests that restart the manager).
	SkipNameValidation bool
}

// LeaderElectionID names the manager's leader-election Lease.
const LeaderElectionID = "wasmkube-manager.wasmkube.io"

// NewScheme returns a scheme with the built-in types and wasmkube.io/v1alpha1.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register built-in types: %w", err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("register wasmkube.io/v1alpha1: %w", err)
	}
	return s, nil
}

// CacheOptions caches only what the manager needs: its own Jobs and their pods (by label, in its
// namespace), and Nodes reduced to name, labels, our annotations, platform and runtime handlers.
func CacheOptions(namespace string) cache.Options {
	ours := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue})
	// A field selector, not ByObject.Namespaces: one namespace then needs one plain informer, whose
	// indexer the controller reads in place (see store).
	inNamespace := fields.OneTermEqualSelector("metadata.namespace", namespace)
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&batchv1.Job{}: {Field: inNamespace, Label: ours, Transform: slimJob},
			&corev1.Pod{}:  {Field: inNamespace, Label: ours, Transform: slimPod},
			&corev1.Node{}: {Transform: slimNode},
		},
	}
}

// NewManager builds a controller-runtime manager running the Shim controller.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	if o.Jobs.Image == "" {
		return nil, fmt.Errorf("no installer image: set --installer-image")
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         CacheOptions(o.Jobs.Namespace),
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		PprofBindAddress:              o.PprofAddr,
		LeaderElection:                o.LeaderElection,
		LeaderElectionID:              LeaderElectionID,
		LeaderElectionNamespace:       o.Jobs.Namespace,
		LeaderElectionReleaseOnCancel: true,
		Controller:                    ctrlconfig.Controller{SkipNameValidation: &o.SkipNameValidation},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add ready check: %w", err)
	}
	metrics, err := NewMetrics(o.Registry)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	platforms := o.Platforms
	if platforms == nil {
		platforms = RegistryPlatforms{}
	}
	recorder := newEventWriter(mgr.GetClient(), scheme, "wasmkube-manager")
	if err := mgr.Add(recorder); err != nil {
		return nil, fmt.Errorf("add the event writer: %w", err)
	}
	r := &ShimReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        recorder,
		Metrics:         metrics,
		Platforms:       platforms,
		Jobs:            o.Jobs,
		HandlerDeadline: o.HandlerDeadline,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up the Shim controller: %w", err)
	}
	return mgr, nil
}

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Shim asks the manager to install one containerd shim on the nodes it selects, one short privileged Job
// per node, and to publish a RuntimeClass that schedules pods onto the nodes where the shim is ready.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=shm
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.nodes.ready`,description="Nodes where the shim is installed and ready"
// +kubebuilder:printcolumn:name="Selected",type=integer,JSONPath=`.status.nodes.selected`,description="Nodes the Shim selects"
// +kubebuilder:printcolumn:name="Installing",type=integer,JSONPath=`.status.nodes.installing`,description="Nodes with an install Job running"
// +kubebuilder:printcolumn:name="Wave",type=integer,JSONPath=`.status.rollout.waveSize`,description="How many nodes may be in flight now: 1, 2, 4, ... up to maxUnavailable (slow start); back to 1 after a failure"
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.nodes.failed`,description="Nodes where the install failed"
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].reason`,description="Why the Shim is degraded (HandlerConflict, RuntimeClassConflict, NodesFailed, ...), or NoFailures"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 58",message="metadata.name must be at most 58 characters: it becomes part of the node label shim.wasmkube.io/<name> and the annotation shim.wasmkube.io/<name>.hash"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit)"
type Shim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ShimSpec `json:"spec"`
	// +optional
	Status ShimStatus `json:"status,omitempty"`
}

// ShimList is a list of Shims.
//
// +kubebuilder:object:root=true
type ShimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Shim `json:"items"`
}

// ShimSpec is what to install, where, and how fast.
//
// +kubebuilder:validation:XValidation:rule="has(self.handler) == has(oldSelf.handler) && (!has(self.handler) || self.handler == oldSelf.handler)",message="handler is immutable: create a new Shim for a new handler"
type ShimSpec struct {
	// RuntimeType is the containerd runtime_type, e.g. io.containerd.spin.v2; containerd runs the binary
	// containerd-shim-spin-v2 for it.
	// +required
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^io\\\\.containerd\\\\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?\\\\.v[0-9]+$')",message="runtimeType must look like io.containerd.<name>.<version>, e.g. io.containerd.spin.v2"
	RuntimeType string `json:"runtimeType"`

	// Handler is the containerd runtime name and the RuntimeClass handler. Defaults to the Shim's name.
	// Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="handler must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
	Handler string `json:"handler,omitempty"`

	// RuntimeClass describes the RuntimeClass the manager creates and owns for this Shim.
	// +optional
	RuntimeClass RuntimeClassSpec `json:"runtimeClass,omitempty"`

	// Source says where the shim binary comes from.
	// +required
	Source ShimSource `json:"source"`

	// Options are the containerd runtime options of the handler, e.g. {SystemdCgroup: true}. Names are
	// TOML bare keys. A value is a string, a boolean, an integer within int64, a number with a fractional
	// part (a float) or a list of strings, and reaches the containerd config with its exact value and
	// type. wasmkube's admission policy (installed by the chart) refuses other values, such as an integer
	// beyond int64 or 2.0 (which the API server stores as the integer 2); without the policy the manager
	// refuses them with the condition Degraded=True, reason InvalidSpec, before any Job runs.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Options map[string]apiextensionsv1.JSON `json:"options,omitempty"`

	// NodeSelector picks the nodes: null (the default) selects the nodes annotated wasmkube.io/enabled=true,
	// {} selects every node, and labels select the nodes that carry all of them. A node annotated
	// wasmkube.io/enabled=false is never selected.
	// +optional
	// +nullable
	// +kubebuilder:validation:MaxProperties=16
	NodeSelector map[string]string `json:"nodeSelector"`

	// Rollout bounds how fast the install moves across nodes.
	// +optional
	Rollout RolloutSpec `json:"rollout,omitempty"`

	// Requirements are what a node must run to take this Shim. A selected node that does not meet them
	// is marked unsupported (never failed, so it costs no failure budget), and is looked at again when
	// its container runtime changes.
	// +optional
	Requirements Requirements `json:"requirements,omitempty"`

	// Verify configures the periodic check of ready nodes whose runtime reports no handlers.
	// +optional
	Verify VerifySpec `json:"verify,omitempty"`
}

// Requirements are what a node must run to take a Shim, besides an OS and architecture its source offers.
type Requirements struct {
	// Containerd is a semantic version constraint on the node's containerd, e.g. ">=2.0" or ">=1.7, <3".
	// The node's status.nodeInfo.containerRuntimeVersion must name containerd (CRI-O and other runtimes
	// never qualify) at a version that satisfies it; a suffix such as -k3s1 is ignored. Empty accepts any
	// containerd. A builtin source adds its own requirement (wazero: containerd >=2.0).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9A-Za-z.*^~<>=!|, -]+$')",message="requirements.containerd must be a semantic version constraint such as >=2.0 or >=1.7, <3"
	Containerd string `json:"containerd,omitempty"`
}

// VerifySpec configures verify Jobs: on a ready node whose container runtime does not report its handlers
// in node.status.runtimeHandlers (containerd 1.x), the manager cannot see the handler disappear, so it
// runs a short node-installer verify Job there now and then; a failed verify marks the node drifted.
type VerifySpec struct {
	// Interval between a node's verify Jobs; 0s switches them off for this Shim. Defaults to the manager's
	// --verify-interval (chart: manager.verifyInterval).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) == duration('0s') || duration(self) >= duration('1m')",message="verify.interval must be 0s (off) or at least 1m"
	Interval *metav1.Duration `json:"interval,omitempty"`
}

// RuntimeClassSpec describes the RuntimeClass created for a Shim. Its handler is the Shim's handler and
// its node selector is shim.wasmkube.io/<shim>=ready.
type RuntimeClassSpec struct {
	// Name of the RuntimeClass. Defaults to the Shim's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="runtimeClass.name must be a DNS subdomain: lowercase letters, digits, '-' and '.'"
	Name string `json:"name,omitempty"`

	// Tolerations are added to pods that use the RuntimeClass.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// Overhead is the fixed per-pod resource overhead of the runtime (RuntimeClass overhead.podFixed).
	// +optional
	Overhead corev1.ResourceList `json:"overhead,omitempty"`
}

// ShimSource names exactly one origin of the shim binary.
//
// +kubebuilder:validation:XValidation:rule="(has(self.oci) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.builtin) ? 1 : 0) == 1",message="source must set exactly one of oci, http or builtin"
type ShimSource struct {
	// OCI takes the binary from a file inside an OCI image (an index picks the node's platform).
	// +optional
	OCI *OCISource `json:"oci,omitempty"`
	// HTTP downloads a binary (or a .tar.gz holding it) per platform over HTTPS, checked by sha256.
	// +optional
	HTTP *HTTPSource `json:"http,omitempty"`
	// Builtin names a shim shipped inside the installer image.
	// +optional
	// +kubebuilder:validation:Enum=wazero
	Builtin string `json:"builtin,omitempty"`
}

// OCISource is a file inside an OCI image.
type OCISource struct {
	// Image is the image reference, REGISTRY/REPO:TAG or REGISTRY/REPO@sha256:...
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.matches('\\\\s')",message="oci.image must not contain whitespace"
	Image string `json:"image"`
	// Path of the shim binary inside the image, e.g. /containerd-shim-spin-v2.
	// +required
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="oci.path must be an absolute path inside the image, e.g. /containerd-shim-spin-v2"
	Path string `json:"path"`
	// PullSecret names a kubernetes.io/dockerconfigjson Secret in the manager's namespace used to pull
	// the image.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PullSecret string `json:"pullSecret,omitempty"`
}

// HTTPSource lists one download per platform.
type HTTPSource struct {
	// Platforms are the downloads; a node whose OS/architecture is not listed is marked unsupported.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(p, self.exists_one(q, q.os == p.os && q.arch == p.arch))",message="http.platforms must not list the same os/arch twice"
	Platforms []HTTPArtifact `json:"platforms"`
}

// HTTPArtifact is the download for one platform.
type HTTPArtifact struct {
	// OS is the node operating system (status.nodeInfo.operatingSystem), e.g. linux.
	// +optional
	// +kubebuilder:default=linux
	// +kubebuilder:validation:MaxLength=32
	OS string `json:"os,omitempty"`
	// Arch is the node architecture (status.nodeInfo.architecture), e.g. amd64 or arm64.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	Arch string `json:"arch"`
	// URL is an https:// URL of the binary or of a .tar.gz holding it.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') && isURL(self)",message="url must be an https:// URL"
	URL string `json:"url"`
	// SHA256 is the hex sha256 of the downloaded file.
	// +required
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-f0-9]{64}$')",message="sha256 must be 64 lowercase hex characters"
	SHA256 string `json:"sha256"`
}

// DefaultMaxUnavailable is spec.rollout.maxUnavailable when it is not set (see RolloutSpec).
const DefaultMaxUnavailable = "10%"

// RolloutSpec bounds the rollout.
type RolloutSpec struct {
	// MaxUnavailable is how many nodes may be installing (or uninstalling) at once: a number, or a
	// percentage of the selected nodes (rounded down, at least 1). The rollout reaches it by slow start:
	// the first node of a new spec is a canary that installs alone; after it succeeds, the number of
	// nodes in flight doubles with each wave whose nodes all succeed (1, 2, 4, 8, ...) up to
	// maxUnavailable, and any failure drops it back to 1 (status.rollout.waveSize shows it).
	//
	// Defaults to 10%. A DaemonSet's default of 1 would install 1,000 nodes one after the other, about
	// an hour when an install and its pod take a few seconds; 10% installs them in a few minutes. It is
	// safe because a bad spec is stopped long before that many nodes run it: the canary must succeed
	// first, slow start then admits one more node in flight per success (99 successes before 100 of
	// 1,000 nodes are in flight), a failure falls back to one node, and failures beyond maxFailures
	// (default 1) pause the rollout. Enabling a shim is an opt-in change, and a node in flight keeps
	// running its pods while containerd restarts (new pods there wait a few seconds), so at most a tenth
	// of the nodes is briefly slower to start pods.
	// +optional
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",message="maxUnavailable must be a positive integer or a percentage from 1% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// MaxFailures is how many nodes may fail for the current spec before the rollout pauses. Defaults to 1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxFailures *int32 `json:"maxFailures,omitempty"`
}

// ShimStatus is what the manager observed.
type ShimStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions are Ready, Progressing and Degraded.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// SpecHash is the hash of the install-relevant spec the rollout targets; nodes carry it in the
	// annotation shim.wasmkube.io/<shim>.hash once installed.
	// +optional
	SpecHash string `json:"specHash,omitempty"`
	// RuntimeClassName is the name of the RuntimeClass published for this Shim.
	// +optional
	RuntimeClassName string `json:"runtimeClassName,omitempty"`
	// Nodes counts the nodes by state.
	// +optional
	Nodes NodeCounts `json:"nodes,omitempty"`
	// Rollout shows the rollout's pace.
	// +optional
	Rollout RolloutStatus `json:"rollout,omitempty"`
}

// RolloutStatus is the pace of a Shim's rollout.
type RolloutStatus struct {
	// MaxUnavailable is spec.rollout.maxUnavailable resolved against the selected nodes.
	MaxUnavailable int32 `json:"maxUnavailable"`
	// WaveSize is how many nodes may be in flight now (slow start): 1 for a new spec's canary and at
	// the start of every round of work after the rollout was idle, one more for every node that
	// succeeds (so it doubles with each fully successful wave: 1, 2, 4, 8, ...), up to maxUnavailable,
	// and back to 1 when a node fails.
	WaveSize int32 `json:"waveSize"`
}

// NodeCounts counts nodes by their shim state.
type NodeCounts struct {
	// Selected nodes (including unsupported ones).
	Selected int32 `json:"selected"`
	// Ready nodes run the current spec.
	Ready int32 `json:"ready"`
	// Drifted nodes were ready but no longer serve the handler; they wait for or run a reinstall.
	Drifted int32 `json:"drifted"`
	// Installing nodes have an install Job running.
	Installing int32 `json:"installing"`
	// Failed nodes failed the current spec.
	Failed int32 `json:"failed"`
	// Unsupported nodes have a platform the source offers no artifact for, a host whose containerd
	// configuration wasmkube cannot edit (e.g. Talos, Bottlerocket), or a container runtime that does not
	// meet the requirements; they spend no failure budget.
	Unsupported int32 `json:"unsupported"`
	// Uninstalling nodes have an uninstall Job running.
	Uninstalling int32 `json:"uninstalling"`
}

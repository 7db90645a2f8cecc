package v1alpha1

// Node annotations and labels shared by the manager and users.
const (
	// EnabledAnnotation on a node opts it in ("true") to the Shims with a null nodeSelector, or out
	// ("false") of every Shim.
	EnabledAnnotation = "wasmkube.io/enabled"
	// NodeLabelPrefix prefixes the per-Shim node state label shim.wasmkube.io/<shim>.
	NodeLabelPrefix = "shim.wasmkube.io/"
	// HashAnnotationSuffix ends the per-Shim annotation shim.wasmkube.io/<shim>.hash.
	HashAnnotationSuffix = ".hash"
	// RuntimeAnnotationSuffix ends the per-Shim annotation shim.wasmkube.io/<shim>.runtime: the node's
	// container runtime version and boot ID when the Shim became ready there.
	RuntimeAnnotationSuffix = ".runtime"
	// Finalizer holds a Shim until its uninstall Jobs have run.
	Finalizer = "wasmkube.io/uninstall"
)

// NodeState is the value of the node label shim.wasmkube.io/<shim>.
type NodeState string

// Node states. A drifted node was ready but no longer serves the handler (the runtime stopped listing
// it, containerd changed or the node rebooted, or a verify Job failed); it is reinstalled through the
// rollout.
const (
	NodeInstalling   NodeState = "installing"
	NodeReady        NodeState = "ready"
	NodeDrifted      NodeState = "drifted"
	NodeFailed       NodeState = "failed"
	NodeUnsupported  NodeState = "unsupported"
	NodeUninstalling NodeState = "uninstalling"
)

// NodeStateLabel returns the node label that holds a node's state for the named Shim.
func NodeStateLabel(shim string) string { return NodeLabelPrefix + shim }

// NodeHashAnnotation returns the node annotation that holds the spec hash installed for the named Shim.
func NodeHashAnnotation(shim string) string { return NodeLabelPrefix + shim + HashAnnotationSuffix }

// NodeRuntimeAnnotation returns the node annotation that holds the runtime the named Shim was made ready
// on: "<containerRuntimeVersion> boot=<bootID>".
func NodeRuntimeAnnotation(shim string) string {
	return NodeLabelPrefix + shim + RuntimeAnnotationSuffix
}

// Condition types of a Shim.
const (
	// ConditionReady is True when every selected, supported node runs the current spec.
	ConditionReady = "Ready"
	// ConditionProgressing is True while nodes are waiting for or running an install or uninstall.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when nodes failed or the Shim cannot be rolled out.
	ConditionDegraded = "Degraded"
)

// Condition reasons of a Shim.
const (
	ReasonAllNodesReady        = "AllNodesReady"        // Ready=True
	ReasonNoNodesSelected      = "NoNodesSelected"      // Ready=True, nothing to do
	ReasonNodesNotReady        = "NodesNotReady"        // Ready=False
	ReasonRollingOut           = "RollingOut"           // Progressing=True
	ReasonUninstalling         = "Uninstalling"         // Progressing=True while the Shim is deleted
	ReasonRolloutComplete      = "RolloutComplete"      // Progressing=False
	ReasonRolloutPaused        = "RolloutPaused"        // Progressing=False, Degraded=True: failures exceed maxFailures
	ReasonNodesFailed          = "NodesFailed"          // Degraded=True within the failure budget
	ReasonNoFailures           = "NoFailures"           // Degraded=False
	ReasonSourceUnresolvable   = "SourceUnresolvable"   // Degraded=True: the OCI index could not be read
	ReasonInvalidSpec          = "InvalidSpec"          // Degraded=True: the spec has values admission cannot check
	ReasonRuntimeClassFailed   = "RuntimeClassFailed"   // Degraded=True: the RuntimeClass could not be applied
	ReasonHandlerConflict      = "HandlerConflict"      // Ready, Progressing False, Degraded True, Event: another Shim holds the handler
	ReasonRuntimeClassConflict = "RuntimeClassConflict" // as HandlerConflict: another Shim or no Shim holds the RuntimeClass name
	ReasonInstalled            = "Installed"            // Event: a node installed the shim
	ReasonInstallFailed        = "InstallFailed"        // Event: a node's install failed
	ReasonUninstalled          = "Uninstalled"          // Event: a node's uninstall finished
	ReasonUninstallFailed      = "UninstallFailed"      // Event: a node's uninstall failed
	ReasonHandlerNotReported   = "HandlerNotReported"   // Event: the kubelet never listed the handler
	ReasonUnsupportedPlatform  = "UnsupportedPlatform"  // Event: no artifact for a node's platform
	ReasonUnsupportedHost      = "UnsupportedHost"      // Event: the installer found a host it cannot configure
	ReasonUnsupportedRuntime   = "UnsupportedRuntime"   // Event: a node's container runtime does not meet the requirements
	ReasonNodeDrifted          = "NodeDrifted"          // Event: a ready node no longer serves the handler
)

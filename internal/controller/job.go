package controller

import (
	"fmt"
	"math"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// Labels and annotations on the manager's Jobs and their pods.
const (
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	ManagedByValue   = "wasmkube-manager"
	LabelShim        = "wasmkube.io/shim"
	LabelOperation   = "wasmkube.io/operation"
	LabelSpecHash    = "wasmkube.io/spec-hash"
	LabelRepair      = "wasmkube.io/repair" // "true" on the install Job of a drifted node
	AnnotationNode   = "wasmkube.io/node"
	installerName    = "installer"
	hostRoot         = "/host"
	registryDir      = "/var/run/wasmkube/registry"
	registryConfig   = registryDir + "/config.json"
	terminationPath  = "/dev/termination-log"
	systemNodeCrit   = "system-node-critical"
	jobControllerUID = "batch.kubernetes.io/controller-uid"
)

// JobConfig is how the manager runs the node-installer.
type JobConfig struct {
	// Namespace the Jobs run in (the manager's namespace).
	Namespace string
	// Image of the node-installer and its pull policy.
	Image           string
	ImagePullPolicy corev1.PullPolicy
	// TTLSecondsAfterFinished, ActiveDeadlineSeconds and BackoffLimit bound each Job.
	TTLSecondsAfterFinished int32
	ActiveDeadlineSeconds   int64
	BackoffLimit            int32
	// Restart, ContainerdConfig and CRISocket override the installer's detection when set.
	Restart          installerapi.RestartMethod
	ContainerdConfig string
	CRISocket        string
	// ShimDir and StateFile move the installer's shim binaries and state file (backups beside it) when set.
	ShimDir   string
	StateFile string
	// Tolerations of the installer pods; nil tolerates every taint.
	Tolerations []corev1.Toleration
	// PriorityClassName of the installer pods; system-node-critical when empty.
	PriorityClassName string
	// NodeOverrides replace Restart, ContainerdConfig and CRISocket on matching nodes (see ForNode).
	NodeOverrides []NodeOverride
	// ImagePullSecrets of the installer pods, for the installer image.
	ImagePullSecrets []corev1.LocalObjectReference
	// Env is added to the installer container's environment (the proxy settings).
	Env []corev1.EnvVar
	// Resources of the installer container.
	Resources corev1.ResourceRequirements
	// VerifyInterval is the time between verify Jobs on a ready node whose runtime reports no handlers,
	// for Shims that set no spec.verify.interval; 0 switches them off.
	VerifyInterval time.Duration
}

// VerifyIntervalOf returns a Shim's time between verify Jobs: spec.verify.interval, else the config's.
func (c JobConfig) VerifyIntervalOf(shim *v1alpha1.Shim) time.Duration {
	if i := shim.Spec.Verify.Interval; i != nil {
		return i.Duration
	}
	return c.VerifyInterval
}

// DefaultJobConfig returns the Job settings used when a flag is not given.
func DefaultJobConfig() JobConfig {
	return JobConfig{
		Namespace:               "wasmkube-system",
		ImagePullPolicy:         corev1.PullIfNotPresent,
		TTLSecondsAfterFinished: 600,
		ActiveDeadlineSeconds:   600,
		BackoffLimit:            3,
		VerifyInterval:          10 * time.Minute,
	}
}

// InstallerArgs returns the node-installer arguments of op for a Shim on a node (the Job contract).
func InstallerArgs(cfg JobConfig, shim *v1alpha1.Shim, node *corev1.Node, op rollout.Operation, specHash string) ([]string, error) {
	cfg = cfg.ForNode(node)
	args := []string{string(op), "--host-root=" + hostRoot, "--shim-name=" + shim.Name, "--handler=" + rollout.Handler(shim)}
	// The host overrides go to uninstall too, so that it finds the config, socket and restart method
	// that the install used.
	if cfg.Restart != "" {
		args = append(args, "--restart="+string(cfg.Restart))
	}
	if cfg.ContainerdConfig != "" {
		args = append(args, "--containerd-config="+cfg.ContainerdConfig)
	}
	if cfg.CRISocket != "" {
		args = append(args, "--cri-socket="+cfg.CRISocket)
	}
	if cfg.ShimDir != "" {
		args = append(args, "--shim-dir="+cfg.ShimDir)
	}
	if cfg.StateFile != "" {
		args = append(args, "--state-file="+cfg.StateFile)
	}
	if v := node.Status.NodeInfo.ContainerRuntimeVersion; v != "" {
		args = append(args, "--container-runtime-version="+v)
	}
	if op != rollout.Install {
		return args, nil // uninstall and verify find what was installed in the node's state file
	}
	args = append(args, "--runtime-type="+shim.Spec.RuntimeType)
	src := shim.Spec.Source
	switch {
	case src.OCI != nil:
		args = append(args, "--source-oci="+src.OCI.Image, "--source-path="+src.OCI.Path)
		if src.OCI.PullSecret != "" {
			args = append(args, "--registry-config="+registryConfig)
		}
	case src.HTTP != nil:
		p := rollout.Platform{OS: node.Status.NodeInfo.OperatingSystem, Arch: node.Status.NodeInfo.Architecture}
		for i, q := range rollout.HTTPPlatforms(src.HTTP) {
			if q == p {
				a := src.HTTP.Platforms[i]
				args = append(args, "--source-http-url="+a.URL, "--source-sha256="+a.SHA256)
				break
			}
		}
	case src.Builtin != "":
		args = append(args, "--source-builtin="+src.Builtin)
	}
	opts, err := rollout.OptionFlags(rollout.RawOptions(shim))
	if err != nil {
		return nil, fmt.Errorf("build the Job arguments of Shim %s: %w", shim.Name, err)
	}
	for _, o := range opts {
		args = append(args, "--option="+o)
	}
	args = append(args, "--spec-hash="+specHash)
	return args, nil
}

// failurePolicy fails a Job at once when the installer exits with a code that says a retry cannot help
// (installerapi.ExitUsage, installerapi.ExitPermanent); other failures are retried up to the backoffLimit. A pod
// disrupted by the cluster (preemption, eviction, a node drain) is retried without counting.
func failurePolicy() *batchv1.PodFailurePolicy {
	return &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
			ContainerName: ptr.To(installerName), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn,
			Values: []int32{installerapi.ExitUsage, installerapi.ExitPermanent}}},
		{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{
			{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
	}}
}

// BuildJob returns the Job that runs op for a Shim on a node, per the node-installer contract: pinned to
// the node, privileged with the host's / at /host and the host PID namespace, with cfg's tolerations and
// priority class (default: every taint, system-node-critical), pull secrets, proxy environment and
// resources, without a service-account token, bounded by deadline, retries and TTL, and retrying only
// failures a retry may fix (failurePolicy). The node's matching NodeOverride applies (see ForNode).
func BuildJob(cfg JobConfig, shim *v1alpha1.Shim, node *corev1.Node, op rollout.Operation, specHash string) (*batchv1.Job, error) {
	args, err := InstallerArgs(cfg, shim, node, op, specHash)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelShim:      shim.Name,
		LabelOperation: string(op),
		LabelSpecHash:  specHash,
	}
	volumes := []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: "/", Type: ptr.To(corev1.HostPathDirectory)}}}}
	mounts := []corev1.VolumeMount{{Name: "host", MountPath: hostRoot}}
	tolerations := cfg.Tolerations
	if tolerations == nil {
		tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	}
	priority := cfg.PriorityClassName
	if priority == "" {
		priority = systemNodeCrit
	}
	// A verify Job expires one interval after it finished, which is when the next one is due (see
	// rollout.Input.VerifyInterval); it is retried once, since a failure marks the node drifted and
	// costs a reinstall.
	ttl, backoff := cfg.TTLSecondsAfterFinished, cfg.BackoffLimit
	if op == rollout.Verify {
		interval := min(max(cfg.VerifyIntervalOf(shim), time.Second), math.MaxInt32*time.Second)
		ttl, backoff = int32(interval/time.Second), min(backoff, 1)
	}
	if oci := shim.Spec.Source.OCI; oci != nil && oci.PullSecret != "" && op == rollout.Install {
		volumes = append(volumes, corev1.Volume{Name: "registry", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: oci.PullSecret,
				Items: []corev1.KeyToPath{{Key: corev1.DockerConfigJsonKey, Path: "config.json"}}}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "registry", MountPath: registryDir, ReadOnly: true})
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        rollout.JobName(shim.Name, node.Name, op, specHash),
			Namespace:   cfg.Namespace,
			Labels:      labels,
			Annotations: map[string]string{AnnotationNode: node.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(shim,
				v1alpha1.GroupVersion.WithKind("Shim"))},
		},
		Spec: batchv1.JobSpec{
			TTLSecondsAfterFinished: ptr.To(ttl),
			ActiveDeadlineSeconds:   ptr.To(cfg.ActiveDeadlineSeconds),
			BackoffLimit:            ptr.To(backoff),
			PodFailurePolicy:        failurePolicy(),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{AnnotationNode: node.Name}},
				Spec: corev1.PodSpec{
					NodeName:                     node.Name,
					RestartPolicy:                corev1.RestartPolicyNever,
					HostPID:                      true,
					PriorityClassName:            priority,
					AutomountServiceAccountToken: ptr.To(false),
					Tolerations:                  tolerations,
					ImagePullSecrets:             cfg.ImagePullSecrets,
					Volumes:                      volumes,
					Containers: []corev1.Container{{
						Name:                     installerName,
						Image:                    cfg.Image,
						ImagePullPolicy:          cfg.ImagePullPolicy,
						Args:                     args,
						Env:                      cfg.Env,
						Resources:                cfg.Resources,
						SecurityContext:          &corev1.SecurityContext{Privileged: ptr.To(true)},
						VolumeMounts:             mounts,
						TerminationMessagePath:   terminationPath,
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
					}},
				},
			},
		},
	}, nil
}

// Outcome is what a finished Job says.
type Outcome struct {
	Phase    rollout.JobPhase
	Finished time.Time
	Duration time.Duration
	// Detail is a one-line description for Events.
	Detail string
	// Busy is true when the installer found the node lock held until its deadline (reason NodeBusy).
	Busy bool
}

// jobOutcome reads a Job and the pods it created. A Job that reports success counts as success even when
// the installer found nothing to do (a retried pod after a containerd restart); a Job whose result
// says success=false counts as failed, unless its reason says that the node cannot take the shim at all
// (installerapi.IsUnsupported: the node becomes unsupported and spends no failure budget). A pod that
// succeeded with a successful result settles the Job before the job controller marks it Complete (a Job
// with one completion cannot fail after that), which saves a round trip per node. ok is false while a
// finished Job's result is not readable yet.
func jobOutcome(job *cachedJob, pods []*cachedPod) (o Outcome, ok bool) {
	if job == nil || job.DeletionTimestamp != nil {
		return Outcome{Phase: rollout.JobNone}, true
	}
	o, finished := jobConditionOutcome(job)
	if !finished {
		if o, ok := podSucceeded(job, pods); ok {
			return o, true
		}
		return Outcome{Phase: rollout.JobActive}, true
	}
	msg, found := terminationMessage(pods, o.Phase == rollout.JobSucceeded)
	if !found {
		// The pod informer can trail the Job's; give it a moment unless the pods are gone for good.
		if time.Since(o.Finished) < 30*time.Second {
			return o, false
		}
		return o, true
	}
	r, err := installerapi.Decode([]byte(msg))
	if err != nil {
		o.Detail = strings.TrimSpace(o.Detail + " (unreadable installer result: " + truncate(msg, 200) + ")")
		return o, true
	}
	if r.DurationMS > 0 {
		o.Duration = time.Duration(r.DurationMS) * time.Millisecond
	}
	if !r.Success {
		o.Phase, o.Busy = rollout.JobFailed, r.Reason == installerapi.ReasonNodeBusy
		if installerapi.IsUnsupported(r.Reason) {
			o.Phase = rollout.JobUnsupported
		}
		o.Detail = strings.TrimSpace(fmt.Sprintf("%s: %s", r.Reason, r.Error))
		if r.RolledBack {
			o.Detail += " (rolled back)"
		}
		return o, true
	}
	o.Detail = successDetail(r)
	return o, true
}

// jobConditionOutcome is what a Job's own conditions say: whether it finished, and then its phase,
// condition detail, finish time and duration (the installer's result is not read).
func jobConditionOutcome(job *cachedJob) (o Outcome, finished bool) {
	done := job.Done
	if done == nil {
		return Outcome{Phase: rollout.JobActive}, false
	}
	o.Finished = done.LastTransitionTime.Time
	if job.StartTime != nil {
		o.Duration = o.Finished.Sub(job.StartTime.Time)
	}
	o.Phase = rollout.JobSucceeded
	if done.Type == batchv1.JobFailed {
		o.Phase = rollout.JobFailed
		o.Detail = strings.TrimSpace(done.Reason + ": " + done.Message)
	}
	return o, true
}

// podSucceeded reports a pod of job that exited 0 with a successful installer result.
func podSucceeded(job *cachedJob, pods []*cachedPod) (Outcome, bool) {
	msg, found := terminationMessage(pods, true)
	if !found {
		return Outcome{}, false
	}
	r, err := installerapi.Decode([]byte(msg))
	if err != nil || !r.Success {
		return Outcome{}, false // let the Job decide
	}
	o := Outcome{Phase: rollout.JobSucceeded, Duration: time.Duration(r.DurationMS) * time.Millisecond,
		Detail: successDetail(r)}
	for _, p := range pods {
		if p.Installer != nil && p.Phase == corev1.PodSucceeded {
			o.Finished = p.Installer.FinishedAt.Time
		}
	}
	if o.Duration == 0 && job.StartTime != nil && !o.Finished.IsZero() {
		o.Duration = o.Finished.Sub(job.StartTime.Time)
	}
	return o, true
}

func successDetail(r installerapi.Result) string {
	return fmt.Sprintf("changed=%t restarted=%t platform=%s distro=%s in %s", r.Changed, r.Restarted,
		r.Platform, r.Distro, time.Duration(r.DurationMS)*time.Millisecond)
}

// terminationMessage returns the installer container's termination message: from a succeeded pod when
// the Job succeeded, else from the pod that terminated last.
func terminationMessage(pods []*cachedPod, succeeded bool) (string, bool) {
	var best string
	var bestAt time.Time
	found := false
	for _, p := range pods {
		t := p.Installer
		if succeeded && p.Phase != corev1.PodSucceeded || t == nil || t.Message == "" {
			continue
		}
		if !found || t.FinishedAt.After(bestAt) {
			best, bestAt, found = t.Message, t.FinishedAt.Time, true
		}
	}
	return best, found
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

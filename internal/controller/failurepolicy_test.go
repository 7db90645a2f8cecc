package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/rollout"
)

// TestPodFailurePolicy runs installer Jobs built by BuildJob through the real job controller: an
// installer that exits 3 (a config it must not edit) fails its Job at once, while one that exits 1 is
// retried up to the backoffLimit (the positive control that the policy, not a missing retry, made the
// difference).
func TestPodFailurePolicy(t *testing.T) {
	h := newHarness(t)
	h.addNodes("amd64", nil, nil, "unfixable-0", "fail-0")
	cfg := h.opts.Jobs
	cfg.BackoffLimit = 1 // one retry: the job controller waits about 10 s before it
	shim := validShim("policy", func(s *v1alpha1.Shim) { s.UID = "00000000-0000-4000-8000-00000000beef" })
	for _, tc := range []struct {
		node, reason string
		pods         int32
	}{
		{"unfixable-0", batchv1.JobReasonPodFailurePolicy, 1},
		{"fail-0", batchv1.JobReasonBackoffLimitExceeded, 2},
	} {
		t.Run(tc.node, func(t *testing.T) {
			job, err := BuildJob(cfg, shim, testNode(tc.node, "amd64"), rollout.Install, "h1")
			if err != nil {
				t.Fatal(err)
			}
			job.OwnerReferences = nil // no Shim object behind it
			if err := k8s.Create(h.ctx, job); err != nil {
				t.Fatal(err)
			}
			var got batchv1.Job
			h.eventually("Job "+job.Name+" fails", time.Minute, func(ctx context.Context) (bool, string, error) {
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(job), &got); err != nil {
					return false, "", err
				}
				for _, c := range got.Status.Conditions {
					if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
						return true, "", nil
					}
				}
				return false, fmt.Sprintf("%+v", got.Status), nil
			})
			var reason string
			for _, c := range got.Status.Conditions {
				if c.Type == batchv1.JobFailed {
					reason = c.Reason
				}
			}
			if reason != tc.reason || got.Status.Failed != tc.pods {
				t.Errorf("Job failed with reason %s after %d pods, want %s after %d", reason, got.Status.Failed, tc.reason, tc.pods)
			}
		})
	}
}

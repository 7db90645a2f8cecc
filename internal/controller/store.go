package controller

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Index names of the informer indexes the store adds.
const (
	indexShim       = "wasmkube.io/shim"        // Jobs by their Shim
	indexActiveNode = "wasmkube.io/active-node" // unfinished Jobs by their node (finished ones are not indexed)
	indexActiveShim = "wasmkube.io/active-shim" // unfinished Jobs by their Shim
	indexJobUID     = "wasmkube.io/job-uid"     // installer pods by their Job's UID
)

// store reads the manager's informer caches in place. A List through the cached client copies every
// object into a new slice on each call; at thousands of nodes a reconcile did little else, and its
// garbage set the manager's memory peak. The objects a store returns belong to the cache: read them,
// never modify them.
type store struct {
	nodes, jobs, pods toolscache.Indexer
}

// newStore gets (creating if needed) the informers for Nodes, installer Jobs and their pods from c and
// adds the store's indexes. Call it before the cache starts.
func newStore(ctx context.Context, c cache.Cache) (*store, error) {
	var s store
	for _, x := range []struct {
		obj      client.Object
		into     *toolscache.Indexer
		indexers toolscache.Indexers
	}{
		{&corev1.Node{}, &s.nodes, nil},
		{&batchv1.Job{}, &s.jobs, toolscache.Indexers{indexShim: jobShim, indexActiveNode: activeJobNode, indexActiveShim: activeJobShim}},
		{&corev1.Pod{}, &s.pods, toolscache.Indexers{indexJobUID: podJobUID}},
	} {
		inf, err := c.GetInformer(ctx, x.obj)
		if err != nil {
			return nil, fmt.Errorf("get the %T informer: %w", x.obj, err)
		}
		indexed, ok := inf.(interface{ GetIndexer() toolscache.Indexer })
		if !ok {
			return nil, fmt.Errorf("the %T informer (%T) does not expose its indexer", x.obj, inf)
		}
		if x.indexers != nil {
			if err := inf.AddIndexers(x.indexers); err != nil {
				return nil, fmt.Errorf("index the %T cache: %w", x.obj, err)
			}
		}
		*x.into = indexed.GetIndexer()
	}
	return &s, nil
}

func jobShim(obj any) ([]string, error) {
	if j, ok := obj.(*cachedJob); ok && j.Shim != "" {
		return []string{j.Shim}, nil
	}
	return nil, nil
}

// activeJobNode indexes a Job by its node while it runs: an index entry per running Job only, so the
// index stays as small as the rollouts' concurrency.
func activeJobNode(obj any) ([]string, error) {
	if j, ok := obj.(*cachedJob); ok && j.Node != "" && j.Done == nil && j.DeletionTimestamp == nil {
		return []string{j.Node}, nil
	}
	return nil, nil
}

// activeJobShim indexes a Job by its Shim while it runs.
func activeJobShim(obj any) ([]string, error) {
	if j, ok := obj.(*cachedJob); ok && j.Shim != "" && j.Done == nil && j.DeletionTimestamp == nil {
		return []string{j.Shim}, nil
	}
	return nil, nil
}

func podJobUID(obj any) ([]string, error) {
	if p, ok := obj.(*cachedPod); ok && p.JobUID != "" {
		return []string{string(p.JobUID)}, nil
	}
	return nil, nil
}

// allNodes returns the cached nodes.
func (s *store) allNodes() []*cachedNode {
	objs := s.nodes.List()
	out := make([]*cachedNode, 0, len(objs))
	for _, o := range objs {
		if n, ok := o.(*cachedNode); ok {
			out = append(out, n)
		}
	}
	return out
}

// node returns the cached node called name, or nil.
func (s *store) node(name string) *cachedNode {
	o, ok, err := s.nodes.GetByKey(name)
	if err != nil || !ok {
		return nil
	}
	n, _ := o.(*cachedNode)
	return n
}

// shimJobs returns the cached Jobs of a Shim.
func (s *store) shimJobs(shim string) []*cachedJob {
	return indexed[cachedJob](s.jobs, indexShim, shim)
}

// activeJobs returns the cached Jobs that run on a node.
func (s *store) activeJobs(node string) []*cachedJob {
	return indexed[cachedJob](s.jobs, indexActiveNode, node)
}

// othersActive maps each node where a Job of another Shim than shim runs to that Shim. It reads only
// the running Jobs, not every node.
func (s *store) othersActive(shim string) map[string]string {
	out := map[string]string{}
	for _, other := range s.jobs.ListIndexFuncValues(indexActiveShim) {
		if other == shim {
			continue
		}
		for _, j := range indexed[cachedJob](s.jobs, indexActiveShim, other) {
			out[j.Node] = other
		}
	}
	return out
}

// jobPods returns the cached pods of a Job.
func (s *store) jobPods(job types.UID) []*cachedPod {
	return indexed[cachedPod](s.pods, indexJobUID, string(job))
}

func indexed[T any](idx toolscache.Indexer, index, key string) []*T {
	objs, err := idx.ByIndex(index, key)
	if err != nil || len(objs) == 0 {
		return nil // the index exists (newStore added it), so err cannot happen
	}
	out := make([]*T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(*T); ok {
			out = append(out, t)
		}
	}
	return out
}

package controller

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/wasmkube/wasmkube/api/v1alpha1"
)

// benchEventNodes is the cluster size the Event writer's memory is measured at.
const benchEventNodes = 5000

// BenchmarkEventRecorderMemory measures the heap an Event recorder still holds after a rollout's one
// Event per node result (benchEventNodes nodes) has been written: the hand-written eventWriter against
// client-go's events broadcaster, which controller-runtime's manager.GetEventRecorder starts. Both write
// to a sink that accepts every Event at once, so what is left is what the recorder keeps, not a backlog.
// Run with -benchtime=1x; the figure is the retained-B/node metric.
func BenchmarkEventRecorderMemory(b *testing.B) {
	// A logger as the manager sets one: until then controller-runtime's delegating logger keeps every
	// logger derived from it, which the eventWriter's per-Event WithName would count as retained.
	ctrl.SetLogger(logr.Discard())
	scheme, err := NewScheme()
	if err != nil {
		b.Fatal(err)
	}
	shim := &v1alpha1.Shim{ObjectMeta: metav1.ObjectMeta{Name: "wazero", UID: "6b1f8d2e-4c1a-4a57-9d1e-0f3c2b7a9e10"}}
	shim.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Shim"))
	nodes := make([]*corev1.Node, benchEventNodes)
	for i := range nodes {
		nodes[i] = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("node-%05d", i), UID: types.UID(fmt.Sprintf("uid-%05d", i))}}
		nodes[i].SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	}
	record := func(rec events.EventRecorder) {
		for _, n := range nodes {
			rec.Eventf(shim, n, corev1.EventTypeNormal, v1alpha1.ReasonInstalled, "Reconcile",
				"node %s: installed containerd-shim-wazero-v1 (sha256:9f2c...e1) with distro containerd, restarted in %s", n.Name, 412*time.Millisecond)
		}
	}
	measure := func(b *testing.B, start func(ctx context.Context, created *atomic.Int64) (events.EventRecorder, func())) {
		for b.Loop() {
			ctx, cancel := context.WithCancel(context.Background())
			var created atomic.Int64
			before := heapInUse()
			rec, stop := start(ctx, &created)
			record(rec)
			// Wait until every Event is written or the writes stop (a full queue drops Events).
			for last := int64(-1); created.Load() < benchEventNodes && created.Load() != last; {
				last = created.Load()
				time.Sleep(200 * time.Millisecond)
			}
			after := heapInUse()
			runtime.KeepAlive(rec)
			b.ReportMetric(float64(after-before)/benchEventNodes, "retained-B/node")
			b.ReportMetric(float64(created.Load()), "written")
			cancel()
			stop()
		}
	}
	b.Run("eventWriter", func(b *testing.B) {
		measure(b, func(ctx context.Context, created *atomic.Int64) (events.EventRecorder, func()) {
			w := newEventWriter(createCounter{n: created}, scheme, "wasmkube")
			done := make(chan struct{})
			go func() { _ = w.Start(ctx); close(done) }()
			return w, func() { <-done }
		})
	})
	b.Run("client-go", func(b *testing.B) {
		measure(b, func(ctx context.Context, created *atomic.Int64) (events.EventRecorder, func()) {
			bc := events.NewBroadcaster(acceptingSink{created})
			if err := bc.StartRecordingToSinkWithContext(ctx); err != nil {
				b.Fatal(err)
			}
			return bc.NewRecorder(scheme, "wasmkube"), bc.Shutdown
		})
	})
}

// heapInUse returns the live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// createCounter is a client whose Create accepts every object and counts it; the eventWriter calls
// nothing else (any other method would panic on the nil embedded client).
type createCounter struct {
	client.Client
	n *atomic.Int64
}

func (c createCounter) Create(context.Context, client.Object, ...client.CreateOption) error {
	c.n.Add(1)
	return nil
}

// acceptingSink is an events.EventSink that accepts every Event and counts the created ones.
type acceptingSink struct{ n *atomic.Int64 }

func (s acceptingSink) Create(_ context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	s.n.Add(1)
	return ev, nil
}

func (s acceptingSink) Update(_ context.Context, ev *eventsv1.Event) (*eventsv1.Event, error) {
	return ev, nil
}

func (s acceptingSink) Patch(_ context.Context, ev *eventsv1.Event, _ []byte) (*eventsv1.Event, error) {
	return ev, nil
}

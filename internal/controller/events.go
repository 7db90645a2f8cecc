package controller

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"sync"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// eventQueueLength bounds the Events waiting to be written; more are dropped (and logged).
	eventQueueLength = 1024
	// eventRepeatWindow is how long an Event's repeats are dropped.
	eventRepeatWindow = 10 * time.Minute
	// eventWorkers write Events in parallel: one at a time fell behind a rollout over 1,000 nodes.
	eventWorkers = 8
	// eventFlushTimeout bounds the writing of the queued Events when the manager stops.
	eventFlushTimeout = 5 * time.Second
)

// eventWriter is an events.EventRecorder that writes Events from a bounded queue and drops an Event's
// repeats (same object, type, reason, action and note) for eventRepeatWindow. It exists for memory:
// client-go's events broadcaster, which controller-runtime's recorder starts, keeps a copy of every
// Event it sent for 6 to 12 minutes to count repeats into a series. With one Event per node result,
// BenchmarkEventRecorderMemory measured (client-go v0.37, 5,000 nodes) 1.3-1.4 KB retained per Event
// there, 6.4-7.1 MB in all, against 68 B per Event (the repeat keys), 0.34 MB, here: a measurable share
// of the manager's 100 MiB budget at that size. Start it with the manager (it is a Runnable).
type eventWriter struct {
	client     client.Client
	scheme     *runtime.Scheme
	controller string
	instance   string
	queue      chan *eventsv1.Event

	mu   sync.Mutex
	sent map[uint64]time.Time // by eventKey
}

var _ events.EventRecorder = (*eventWriter)(nil)

func newEventWriter(c client.Client, scheme *runtime.Scheme, controller string) *eventWriter {
	host, _ := os.Hostname()
	return &eventWriter{client: c, scheme: scheme, controller: controller, instance: controller + "-" + host,
		queue: make(chan *eventsv1.Event, eventQueueLength), sent: map[uint64]time.Time{}}
}

// Eventf queues an Event about regarding (and related, if not nil); note is a format for args.
func (w *eventWriter) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	log := ctrl.Log.WithName("events")
	ref, err := reference.GetReference(w.scheme, regarding)
	if err != nil {
		log.Error(err, "cannot reference the object of an Event; not recorded", "reason", reason)
		return
	}
	namespace := ref.Namespace
	if namespace == "" {
		namespace = metav1.NamespaceDefault // where Events about cluster-scoped objects go
	}
	now := time.Now()
	ev := &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()), Namespace: namespace},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: w.controller,
		ReportingInstance:   w.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Note:                truncate(fmt.Sprintf(note, args...), 1024-len("...")),
		Type:                eventtype,
	}
	if related != nil {
		if ref, err := reference.GetReference(w.scheme, related); err == nil {
			ev.Related = ref
		}
	}
	if w.repeat(eventKey(ev), now) {
		return
	}
	select {
	case w.queue <- ev:
	default:
		log.Info("event queue full; Event dropped", "object", ref.Name, "reason", reason, "note", ev.Note)
	}
}

// repeat reports whether an Event with key was queued within eventRepeatWindow before now, and
// remembers key otherwise.
func (w *eventWriter) repeat(key uint64, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if at, ok := w.sent[key]; ok && now.Sub(at) < eventRepeatWindow {
		return true
	}
	if len(w.sent) >= eventQueueLength && len(w.sent)%eventQueueLength == 0 {
		for k, at := range w.sent {
			if now.Sub(at) >= eventRepeatWindow {
				delete(w.sent, k)
			}
		}
	}
	w.sent[key] = now
	return false
}

// eventKey hashes what makes two Events repeats of each other.
func eventKey(ev *eventsv1.Event) uint64 {
	h := fnv.New64a()
	for _, s := range []string{string(ev.Regarding.UID), ev.Regarding.Kind, ev.Regarding.Name, ev.Type, ev.Reason, ev.Action, ev.Note} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// Start writes queued Events until ctx ends, then for up to eventFlushTimeout the ones still queued.
func (w *eventWriter) Start(ctx context.Context) error {
	var workers sync.WaitGroup
	for range eventWorkers {
		workers.Go(func() {
			for {
				select {
				case ev := <-w.queue:
					w.write(ctx, ev)
				case <-ctx.Done():
					flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), eventFlushTimeout)
					defer cancel()
					for {
						select {
						case ev := <-w.queue:
							w.write(flush, ev)
						default:
							return
						}
					}
				}
			}
		})
	}
	workers.Wait()
	return nil
}

func (w *eventWriter) write(ctx context.Context, ev *eventsv1.Event) {
	if err := w.client.Create(ctx, ev); err != nil {
		ctrl.Log.WithName("events").Error(err, "write Event", "object", ev.Regarding.Name, "reason", ev.Reason)
	}
}

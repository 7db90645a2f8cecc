package controller

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEventWriterDropsRepeats(t *testing.T) {
	t.Parallel()
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	w := newEventWriter(nil, scheme, "test")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "u1"}}
	w.Eventf(node, nil, corev1.EventTypeNormal, "Installed", "Install", "installed %s", "wazero")
	w.Eventf(node, nil, corev1.EventTypeNormal, "Installed", "Install", "installed %s", "wazero")
	w.Eventf(node, nil, corev1.EventTypeNormal, "Installed", "Install", "installed %s", "spin")
	if got := len(w.queue); got != 2 {
		t.Fatalf("%d Events queued, want 2 (the repeat dropped)", got)
	}
	ev := <-w.queue
	if ev.Namespace != metav1.NamespaceDefault || ev.Regarding.Kind != "Node" || ev.Regarding.Name != "n1" ||
		ev.Note != "installed wazero" || ev.ReportingController != "test" || ev.EventTime.IsZero() {
		t.Fatalf("Event = %+v", ev)
	}
	later := time.Now().Add(eventRepeatWindow + time.Second)
	if w.repeat(eventKey(ev), later) {
		t.Fatal("an Event older than the repeat window still counts as a repeat")
	}
}

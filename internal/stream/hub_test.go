package stream

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

var created = time.Now().Add(-time.Hour)

func cluster(name, phase string, ops int64) api.Cluster {
	now := time.Now()
	m := api.InstanceStatus{Name: name + "-0-0", Role: "master", Up: true, OpsPerSec: ops}
	return api.Cluster{Name: name, CreatedAt: created, Status: api.ClusterStatus{Phase: phase, ObservedAt: &now,
		Shards: []api.ShardStatus{{Index: 0, Master: &m}}}}
}

// pending are the frames of a batch not read yet, per subscriber.
var pending = map[*Sub][]Frame{}

// next reads the next frame within 2 s.
func next(t *testing.T, s *Sub) Frame {
	t.Helper()
	if len(pending[s]) == 0 {
		select {
		case b, ok := <-s.C():
			if !ok {
				t.Fatal("subscription closed")
			}
			pending[s] = b
		case <-time.After(2 * time.Second):
			t.Fatal("no frame within 2 s")
		}
	}
	f := pending[s][0]
	pending[s] = pending[s][1:]
	return f
}

func kind(f Frame) string {
	return strings.TrimPrefix(strings.SplitN(string(f.Data), "\n", 2)[0], "event: ")
}

func TestHubChanges(t *testing.T) {
	src := NewMemSource()
	src.PutCluster(cluster("a", api.PhaseReady, 10))
	src.AddEvent(api.Event{ID: "e1", Cluster: "a", Type: "created", At: time.Now()})
	running := api.Job{ID: "j1", Cluster: "a", Kind: api.JobScale, State: api.StateRunning, Progress: 0.5, CreatedAt: time.Now()}
	src.PutJob(running)
	h := New(src, quietLog())
	h.interval = 50 * time.Millisecond
	snap, sub, err := h.Subscribe(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(snap) != 2 || kind(snap[0]) != "cluster" || kind(snap[1]) != "job" {
		t.Fatalf("snapshot %q", snap)
	}
	// Figures only: not sent at once (at most every 10 s).
	src.PutCluster(cluster("a", api.PhaseReady, 20))
	// The phase: at once. A new event, a job's progress, a deletion.
	time.Sleep(150 * time.Millisecond)
	src.PutCluster(cluster("a", api.PhaseDegraded, 20))
	if f := next(t, sub); kind(f) != "cluster" || !strings.Contains(string(f.Data), `"phase":"Degraded"`) {
		t.Fatalf("got %s", f.Data)
	}
	src.AddEvent(api.Event{ID: "e2", Cluster: "a", Type: "failover", At: time.Now()})
	if f := next(t, sub); kind(f) != "event" || !strings.Contains(string(f.Data), `"id":"e2"`) {
		t.Fatalf("got %s", f.Data)
	}
	fin := time.Now()
	running.State, running.Progress, running.FinishedAt = api.StateSucceeded, 1, &fin
	src.PutJob(running)
	if f := next(t, sub); kind(f) != "job" || !strings.Contains(string(f.Data), `"state":"succeeded"`) {
		t.Fatalf("got %s", f.Data)
	}
	// A job that starts and ends between two reads is still sent.
	quick := api.Job{ID: "j2", Cluster: "b", Kind: api.JobCreate, State: api.StateSucceeded, Progress: 1, CreatedAt: time.Now(), FinishedAt: &fin}
	src.PutCluster(cluster("b", api.PhaseReady, 0))
	src.AddEvent(api.Event{ID: "e3", Cluster: "b", Type: "created", At: time.Now()})
	src.PutJob(quick)
	got := map[string]bool{}
	for range 3 {
		f := next(t, sub)
		got[kind(f)+":"+f.Cluster] = true
	}
	if !got["cluster:b"] || !got["job:b"] || !got["event:b"] {
		t.Fatalf("a new cluster with its job and event: got %v", got)
	}
	src.DeleteCluster("a")
	if f := next(t, sub); kind(f) != "cluster-deleted" || !strings.Contains(string(f.Data), `{"name":"a"}`) {
		t.Fatalf("got %s", f.Data)
	}
	h.Unsubscribe(sub)
	if h.Running() {
		t.Fatal("the poller runs with no subscriber")
	}
}

// TestHubSlowSubscriber: a subscriber that reads nothing is dropped once
// it is Buffer reads behind, and the others get every change.
func TestHubSlowSubscriber(t *testing.T) {
	src := NewMemSource()
	src.PutCluster(cluster("a", api.PhaseReady, 0))
	h := New(src, quietLog())
	h.interval = 10 * time.Millisecond
	_, slow, err := h.Subscribe(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	_, fast, err := h.Subscribe(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	// One change per read, each waited for by the fast subscriber.
	for i := range Buffer + 5 {
		cl := cluster("a", api.PhaseDegraded, 0)
		cl.Status.Reason = fmt.Sprintf("change %d", i)
		src.PutCluster(cl)
		f := next(t, fast)
		if want := fmt.Sprintf(`"reason":"change %d"`, i); !strings.Contains(string(f.Data), want) {
			t.Fatalf("fast subscriber: got %s, want %s", f.Data, want)
		}
	}
	got := 0
	for range slow.C() {
		got++
	}
	if got != Buffer {
		t.Fatalf("slow subscriber got %d batches before being closed, want its buffer %d", got, Buffer)
	}
	if h.Subscribers() != 1 {
		t.Fatalf("%d subscribers, want the fast one", h.Subscribers())
	}
	h.Unsubscribe(slow) // a second Unsubscribe of a dropped one is harmless
	h.Unsubscribe(fast)
	if h.Running() || h.Subscribers() != 0 {
		t.Fatal("the poller outlived its subscribers")
	}
}

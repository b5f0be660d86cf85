package alerts

import (
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// sent records what an engine sends.
type sent struct {
	mu     sync.Mutex
	alerts []api.Alert
}

func (s *sent) Enqueue(a api.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, a)
}

// TestEngineNewLeaderContinues: alert state lives in the store, so a
// second engine (the next leader) on the same store continues: it neither
// sends the firing notification again nor loses the pending time; the
// alert resolves once. A silence mutes the notifications, not the state.
func TestEngineNewLeaderContinues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := store.Open(t.Context(), "sqlite://"+filepath.Join(dir, "m.db"), filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ms := int64(5000)
	if err := st.PutAlertRules(t.Context(), "c", api.AlertRules{"instance-down": {ForMs: &ms}}); err != nil {
		t.Fatal(err)
	}
	in := healthy()
	down := in
	down.Status.Shards = []api.ShardStatus{in.Status.Shards[0]}
	down.Status.Shards[0].Replicas = []api.InstanceStatus{in.Status.Shards[0].Replicas[0]}
	down.Status.Shards[0].Replicas[0].Up = false
	cl := func(i Input) []Cluster { return []Cluster{{Name: "c", Spec: i.Spec, Status: i.Status}} }

	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var s1, s2 sent
	first, second := NewEngine(st, &s1, log), NewEngine(st, &s2, log)
	at := func(e *Engine, d time.Duration, i Input) {
		t.Helper()
		e.now = func() time.Time { return t0.Add(d) }
		if err := e.Evaluate(t.Context(), cl(i)); err != nil {
			t.Fatal(err)
		}
	}
	at(first, 0, down)
	at(second, 3*time.Second, down) // a new leader: still pending
	if len(s1.alerts)+len(s2.alerts) != 0 {
		t.Fatalf("sent while pending: %+v %+v", s1.alerts, s2.alerts)
	}
	at(second, 5*time.Second, down) // for counted from the first leader's pending
	at(first, 7*time.Second, down)  // the old one again (in a real store its fence would refuse it)
	if len(s2.alerts) != 1 || s2.alerts[0].State != api.AlertFiring || len(s1.alerts) != 0 {
		t.Fatalf("firing: first sent %+v, second sent %+v; want one firing from the second", s1.alerts, s2.alerts)
	}
	at(first, 9*time.Second, in)
	at(second, 11*time.Second, in)
	if len(s1.alerts) != 1 || s1.alerts[0].State != api.AlertResolved || len(s2.alerts) != 1 {
		t.Fatalf("resolved: first sent %+v, second sent %+v; want one resolved", s1.alerts, s2.alerts)
	}
	evs, _ := st.ListEvents(t.Context(), "c", 0)
	if len(evs) != 2 || evs[0].Type != api.EventAlert || evs[0].Details["state"] != api.AlertResolved || evs[1].Details["state"] != api.AlertFiring {
		t.Fatalf("events %+v, want firing then resolved", evs)
	}

	// Silenced: the alert fires and resolves, nothing is sent.
	if err := st.CreateSilence(t.Context(), api.Silence{ID: "s1", Cluster: "c", EndsAt: t0.Add(time.Hour), Comment: "x"}); err != nil {
		t.Fatal(err)
	}
	at(second, 20*time.Second, down)
	at(second, 26*time.Second, down)
	as, _ := st.ListAlerts(t.Context())
	if len(as) != 1 || as[0].State != api.AlertFiring || !as[0].Silenced {
		t.Fatalf("silenced alert %+v, want firing and silenced", as)
	}
	at(second, 27*time.Second, in)
	if len(s2.alerts) != 1 {
		t.Fatalf("a silenced alert sent %+v", s2.alerts[1:])
	}
}

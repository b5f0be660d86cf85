package alerts

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/store/storetest"
)

// sent records what an engine sends.
type sent struct {
	mu     sync.Mutex
	alerts []api.Alert
}

// Outgoing records a and gives one notification for the store to queue.
func (s *sent) Outgoing(_ context.Context, a api.Alert) ([]store.Outgoing, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.alerts = append(s.alerts, a)
	return []store.Outgoing{{Webhook: "w", Notification: api.Notification{Alert: a, Transition: a.State}}}, nil
}

func (s *sent) Wake() {}

// queued returns the transitions in the store's outbox, oldest first.
func queued(t *testing.T, st store.Store) []string {
	t.Helper()
	outs, err := st.ClaimNotifications(t.Context(), "test", time.Now().Add(time.Hour), time.Now().Add(2*time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range outs {
		got = append(got, o.Notification.Transition)
		if err := st.DoneNotification(t.Context(), o.ID); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// TestEngineNewLeaderContinues: alert state lives in the store, so a
// second engine (the next leader) on the same store continues: it neither
// sends the firing notification again nor loses the pending time; the
// alert resolves once. A silence mutes the notifications, not the state.
func TestEngineNewLeaderContinues(t *testing.T) {
	t.Parallel()
	st, in, down := instanceDownFixture(t, 5000)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
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
	if got := queued(t, st); len(got) != 2 || got[0] != api.AlertFiring || got[1] != api.AlertResolved {
		t.Fatalf("outbox %v, want firing then resolved", got)
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
	if got := queued(t, st); len(got) != 0 {
		t.Fatalf("a silenced alert queued %v", got)
	}
}

// TestEngineStateAndNotificationTogether: a transition's state and its
// notifications are one write. A deposed leader (its fence refused)
// stores neither; the next round of the real leader stores both, once.
func TestEngineStateAndNotificationTogether(t *testing.T) {
	t.Parallel()
	st, _, down := instanceDownFixture(t, 0)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var s sent
	e := NewEngine(st, &s, log)
	refused := 0
	deposed := store.WithFence(t.Context(), store.Fence{Name: "leader", Holder: "old", Epoch: 1, Refused: func(string) { refused++ }})
	if err := e.Evaluate(deposed, []Cluster{{Name: "c", Spec: down.Spec, Status: down.Status}}); err == nil || refused == 0 {
		t.Fatalf("a deposed leader's transition was not refused (err %v, refused %d)", err, refused)
	}
	if as, _ := st.ListAlerts(t.Context()); len(as) != 0 {
		t.Fatalf("refused round stored alerts %+v", as)
	}
	if got := queued(t, st); len(got) != 0 {
		t.Fatalf("refused round queued notifications %v", got)
	}
	if err := e.Evaluate(t.Context(), []Cluster{{Name: "c", Spec: down.Spec, Status: down.Status}}); err != nil {
		t.Fatal(err)
	}
	as, _ := st.ListAlerts(t.Context())
	if len(as) != 1 || as[0].State != api.AlertFiring {
		t.Fatalf("alerts %+v, want one firing", as)
	}
	if got := queued(t, st); len(got) != 1 || got[0] != api.AlertFiring {
		t.Fatalf("outbox %v, want the one firing notification", got)
	}
}

// instanceDownFixture opens a SQLite store whose cluster "c" has
// instance-down's for set to forMs, and returns it with a healthy input
// and one whose only replica of shard 0 is down.
func instanceDownFixture(t *testing.T, forMs int64) (store.Store, Input, Input) {
	t.Helper()
	dir := t.TempDir()
	st := storetest.SQLite(t, dir)
	if err := st.PutAlertRules(t.Context(), "c", api.AlertRules{"instance-down": {ForMs: &forMs}}); err != nil {
		t.Fatal(err)
	}
	in := healthy()
	down := in
	down.Status.Shards = []api.ShardStatus{in.Status.Shards[0]}
	down.Status.Shards[0].Replicas = []api.InstanceStatus{in.Status.Shards[0].Replicas[0]}
	down.Status.Shards[0].Replicas[0].Up = false
	return st, in, down
}

package autoscale

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// memStore is an in-memory Store: one cluster's policy, state and events.
type memStore struct {
	policies map[string]api.AutoscalePolicy
	state    map[string]api.AutoscaleState
	events   []api.Event
}

func (m *memStore) ListAutoscalePolicies(context.Context) (map[string]api.AutoscalePolicy, error) {
	return m.policies, nil
}
func (m *memStore) GetAutoscaleState(_ context.Context, c string) (api.AutoscaleState, error) {
	return m.state[c], nil
}
func (m *memStore) PutAutoscaleState(_ context.Context, c string, st api.AutoscaleState) error {
	m.state[c] = st
	return nil
}
func (m *memStore) ListEventsOfType(_ context.Context, c, typ string, limit int) ([]api.Event, error) {
	var out []api.Event
	for i := len(m.events) - 1; i >= 0 && len(out) < limit; i-- {
		if e := m.events[i]; e.Cluster == c && e.Type == typ {
			out = append(out, e)
		}
	}
	return out, nil
}
func (m *memStore) AddEvent(_ context.Context, e api.Event) error {
	m.events = append(m.events, e)
	return nil
}

// TestEngineLimitRecordedOnce: a scale-out held at replicas.max is
// recorded once, also when the signal drops and comes back; at another
// replica count it is recorded again.
func TestEngineLimitRecordedOnce(t *testing.T) {
	st := &memStore{policies: map[string]api.AutoscalePolicy{}, state: map[string]api.AutoscaleState{}}
	st.policies["a"] = policy(t, func(p *api.AutoscalePolicy) {
		p.Replicas = &api.AutoscaleReplicas{Min: 1, Max: 2, Metric: api.MetricOps, Target: 1000}
		zero := int64(0)
		p.ScaleOutAfterMs, p.FailoverWindowMs = &zero, &zero
	})
	scaled := 0
	e := NewEngine(st, ScalerFunc(func(context.Context, string, api.UpdateClusterRequest) (api.Cluster, api.Job, error) {
		scaled++
		return api.Cluster{}, api.Job{ID: "j_" + strconv.Itoa(scaled)}, nil
	}), nil, slog.New(slog.DiscardHandler))
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := t0
	e.now = func() time.Time { return now }
	commands := 0
	round := func(replicas int, ops int) {
		now = now.Add(2 * time.Second)
		commands += 2 * ops
		obs := topology.Observation{At: now, Redis: []topology.RedisObs{
			{In: store.Instance{Name: "a-0-0"}, Up: true, Info: redisclient.Info{"role": "master", "run_id": "m"}},
			{In: store.Instance{Name: "a-0-1"}, Up: true, Info: redisclient.Info{"role": "slave", "run_id": "r", "total_commands_processed": strconv.Itoa(commands)}},
		}}
		cl := Cluster{Name: "a", Spec: api.ClusterSpec{Shards: 1, Replicas: replicas}, Phase: api.PhaseReady, Obs: obs, Observed: true}
		if err := e.Evaluate(context.Background(), []Cluster{cl}); err != nil {
			t.Fatal(err)
		}
	}
	limits := func() int {
		n := 0
		for _, ev := range st.events {
			if ev.Details["guard"] == GuardLimit {
				n++
			}
		}
		return n
	}
	for _, ops := range []int{5000, 5000, 0, 5000, 5000, 0, 0, 5000} {
		round(2, ops)
	}
	if n := limits(); n != 1 {
		t.Fatalf("%d limit holds recorded at 2 replicas while the signal came and went, want 1", n)
	}
	if scaled != 0 {
		t.Fatalf("scaled %d times at the limit", scaled)
	}
	// Scaled in by a person, then policy max reached again from 1: the
	// engine scales out (a new decision), and a later hold at 2 is
	// recorded again.
	round(1, 5000)
	if scaled != 1 {
		t.Fatalf("no scale-out from 1 below max 2: %d", scaled)
	}
	st.state["a"] = api.AutoscaleState{LastHold: st.state["a"].LastHold} // the job done, no cooldown
	round(2, 5000)
	if n := limits(); n != 2 {
		t.Fatalf("%d limit holds after the limit was reached again, want 2", n)
	}
}

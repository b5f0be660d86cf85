package store

import (
	"errors"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

func TestAutoscaleStore(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			testAutoscale(t, newEnv(t, eng))
		})
	}
}

func testAutoscale(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	mustCreate(t, e, testCluster("orders"))
	if _, err := s.GetAutoscalePolicy(ctx, "orders"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("policy before any: %v, want ErrNotFound", err)
	}
	if err := s.DeleteAutoscalePolicy(ctx, "orders"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete before any: %v, want ErrNotFound", err)
	}
	ms := int64(5000)
	p := api.AutoscalePolicy{Replicas: &api.AutoscaleReplicas{Min: 1, Max: 3, Metric: "ops", Target: 1000}, ScaleOutCooldownMs: &ms, DryRun: true}
	if err := s.PutAutoscalePolicy(ctx, "orders", p); err != nil {
		t.Fatal(err)
	}
	p.Replicas.Max = 4
	if err := s.PutAutoscalePolicy(ctx, "orders", p); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetAutoscalePolicy(ctx, "orders")
	if err != nil || got.Replicas == nil || got.Replicas.Max != 4 || !got.DryRun || *got.ScaleOutCooldownMs != 5000 {
		t.Fatalf("policy read back: %+v %v", got, err)
	}
	all, err := s.ListAutoscalePolicies(ctx)
	if err != nil || len(all) != 1 || all["orders"].Replicas.Target != 1000 {
		t.Fatalf("ListAutoscalePolicies: %+v %v", all, err)
	}
	st, err := s.GetAutoscaleState(ctx, "orders")
	if err != nil || st.LastScaleOutAt != nil {
		t.Fatalf("state before any: %+v %v", st, err)
	}
	at := base.Add(time.Minute)
	for i := range 2 {
		st = api.AutoscaleState{LastScaleOutAt: &at, LastJob: "j_" + string(rune('a'+i))}
		if err := s.PutAutoscaleState(ctx, "orders", st); err != nil {
			t.Fatal(err)
		}
	}
	st, err = s.GetAutoscaleState(ctx, "orders")
	if err != nil || st.LastScaleOutAt == nil || !st.LastScaleOutAt.Equal(at) || st.LastJob != "j_b" {
		t.Fatalf("state read back: %+v %v", st, err)
	}
	for i, typ := range []string{api.EventAutoscale, "failover", api.EventAutoscale} {
		ev := api.Event{ID: "e" + string(rune('0'+i)), Cluster: "orders", Type: typ, At: base.Add(time.Duration(i) * time.Second), Message: typ}
		if err := s.AddEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.ListEventsOfType(ctx, "orders", api.EventAutoscale, 10)
	if err != nil || len(evs) != 2 || evs[0].ID != "e2" || evs[1].ID != "e0" {
		t.Fatalf("ListEventsOfType: %+v %v", evs, err)
	}
	if evs, err := s.ListEventsOfType(ctx, "orders", api.EventAutoscale, 1); err != nil || len(evs) != 1 {
		t.Fatalf("ListEventsOfType limit 1: %+v %v", evs, err)
	}
	// A deleted cluster takes its policy and state with it.
	if err := s.DeleteCluster(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAutoscalePolicy(ctx, "orders"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("policy after the cluster's delete: %v", err)
	}
	if st, err := s.GetAutoscaleState(ctx, "orders"); err != nil || st.LastJob != "" {
		t.Fatalf("state after the cluster's delete: %+v %v", st, err)
	}
}

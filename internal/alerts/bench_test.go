package alerts

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// scaleClusters is the scale: 20 clusters × 16 shards × (1 master
// + 2 replicas), 3 Sentinels each: 960 redis-servers, 60 Sentinels. In
// every cluster one replica is down, so each round carries live alerts.
func scaleClusters() []Cluster {
	var out []Cluster
	for c := 0; c < 20; c++ {
		name := fmt.Sprintf("c%02d", c)
		st := api.ClusterStatus{Phase: api.PhaseDegraded}
		for s := 0; s < 16; s++ {
			m := api.InstanceStatus{Name: fmt.Sprintf("%s-%d-0", name, s), Role: "master", Up: true, UsedMemoryBytes: 50, MaxmemoryBytes: 100, MaxClients: 10000, ConnectedClients: 10}
			sh := api.ShardStatus{Index: s, SentinelName: fmt.Sprintf("%s-%d", name, s), Master: &m}
			for r := 1; r <= 2; r++ {
				sh.Replicas = append(sh.Replicas, api.InstanceStatus{Name: fmt.Sprintf("%s-%d-%d", name, s, r), Role: "replica", Up: !(s == 0 && r == 1), MasterLinkStatus: "up"})
			}
			st.Shards = append(st.Shards, sh)
		}
		for i := 0; i < 3; i++ {
			st.Sentinels = append(st.Sentinels, api.SentinelStatus{Name: fmt.Sprintf("%s-sentinel-%d", name, i), Up: true})
		}
		out = append(out, Cluster{Name: name, Spec: api.ClusterSpec{Shards: 16, Replicas: 2, Sentinels: 3}, Status: st})
	}
	return out
}

// BenchmarkConditions: the pure rules over 1,020 instances, one round.
func BenchmarkConditions(b *testing.B) {
	cls := scaleClusters()
	settings := Effective(nil)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for _, cl := range cls {
			Conditions(Input{Cluster: cl.Name, Spec: cl.Spec, Status: cl.Status, Now: time.Now()}, settings)
		}
	}
}

// BenchmarkEvaluate: one leader round (Engine.Evaluate) over the same
// clusters on a real SQLite store, alerts already pending (the steady
// state: nothing to write).
func BenchmarkEvaluate(b *testing.B) {
	dir := b.TempDir()
	st, err := store.Open(b.Context(), "sqlite://"+filepath.Join(dir, "m.db"), filepath.Join(dir, "key"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	e := NewEngine(st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cls := scaleClusters()
	if err := e.Evaluate(b.Context(), cls); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.Evaluate(b.Context(), cls); err != nil {
			b.Fatal(err)
		}
	}
}

package autoscale

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

func policy(t *testing.T, body func(p *api.AutoscalePolicy)) api.AutoscalePolicy {
	t.Helper()
	p := api.AutoscalePolicy{}
	body(&p)
	n, err := Normalize(p, api.ClusterSpec{Shards: 1, Replicas: 2, Maxmemory: "100mb"})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func at(t0 time.Time, s int) *time.Time { x := t0.Add(time.Duration(s) * time.Second); return &x }

// TestDecide is the decision table: target tracking with the 75 % rule,
// windows, cooldowns, limits, guards, and memory steps.
func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := t0.Add(time.Hour)
	ms := func(v int64) *int64 { return &v }
	replicas := policy(t, func(p *api.AutoscalePolicy) {
		p.Replicas = &api.AutoscaleReplicas{Min: 1, Max: 3, Metric: "ops", Target: 1000}
		p.ScaleOutAfterMs, p.ScaleOutCooldownMs, p.ScaleInCooldownMs, p.StabilizationMs = ms(10000), ms(60000), ms(120000), ms(300000)
	})
	mem := policy(t, func(p *api.AutoscalePolicy) {
		p.Memory = &api.AutoscaleMemory{Max: "200mb", ForMs: ms(5000), LowPercent: new(float64)}
		*p.Memory.LowPercent = 30
		p.StabilizationMs, p.ScaleOutCooldownMs = ms(60000), ms(60000)
	})
	shard := func(avg float64, used, maxmem int64) api.AutoscaleReadings {
		pct := 0.0
		if maxmem > 0 {
			pct = float64(used) / float64(maxmem) * 100
		}
		return api.AutoscaleReadings{Signal: avg, Shards: []api.AutoscaleShardReadings{{Average: avg, UsedMemoryBytes: used, MaxmemoryBytes: maxmem, MemoryPercent: pct}}}
	}
	unread := func(r api.AutoscaleReadings) api.AutoscaleReadings {
		r.Unread = "no previous CPU counters"
		return r
	}
	const mb = 1 << 20
	for _, c := range []struct {
		name     string
		p        api.AutoscalePolicy
		replicas int
		r        api.AutoscaleReadings
		st       api.AutoscaleState
		guards   []Guard
		rguards  []Guard
		action   string
		hold     string
		to       int64
	}{
		{name: "above target, not long enough", p: replicas, replicas: 2, r: shard(1500, 0, 0), st: api.AutoscaleState{AboveSince: at(now, -5)}},
		{name: "above target first round starts the window", p: replicas, replicas: 2, r: shard(1500, 0, 0)},
		{name: "above target for the window", p: replicas, replicas: 2, r: shard(1500, 0, 0), st: api.AutoscaleState{AboveSince: at(now, -10)}, action: ScaleOut, to: 3},
		{name: "at max", p: replicas, replicas: 3, r: shard(1500, 0, 0), st: api.AutoscaleState{AboveSince: at(now, -10)}, action: ScaleOut, hold: GuardLimit},
		{name: "scale-out cooldown", p: replicas, replicas: 2, r: shard(1500, 0, 0), st: api.AutoscaleState{AboveSince: at(now, -20), LastScaleOutAt: at(now, -30)}, action: ScaleOut, hold: GuardCooldown},
		{name: "after the cooldown", p: replicas, replicas: 2, r: shard(1500, 0, 0), st: api.AutoscaleState{AboveSince: at(now, -20), LastScaleOutAt: at(now, -60)}, action: ScaleOut, to: 3},
		{name: "bgsave holds", p: replicas, replicas: 2, r: shard(1500, 0, 0), st: api.AutoscaleState{AboveSince: at(now, -10)}, guards: []Guard{{GuardBgsave, "x"}}, action: ScaleOut, hold: GuardBgsave},
		{name: "replica guard holds scale-out", p: replicas, replicas: 2, r: shard(1500, 0, 0), st: api.AutoscaleState{AboveSince: at(now, -10)}, rguards: []Guard{{GuardMemory, "x"}}, action: ScaleOut, hold: GuardMemory},
		{name: "between 75 % and target: nothing", p: replicas, replicas: 3, r: shard(800, 0, 0), st: api.AutoscaleState{BelowSince: at(now, -1000)}},
		{name: "below 75 %, not stable yet", p: replicas, replicas: 3, r: shard(700, 0, 0), st: api.AutoscaleState{BelowSince: at(now, -299)}},
		{name: "below 75 % for the stabilisation", p: replicas, replicas: 3, r: shard(700, 0, 0), st: api.AutoscaleState{BelowSince: at(now, -300)}, action: ScaleIn, to: 2},
		{name: "scale-in cooldown after a scale-out", p: replicas, replicas: 3, r: shard(700, 0, 0), st: api.AutoscaleState{BelowSince: at(now, -300), LastScaleOutAt: at(now, -100)}, action: ScaleIn, hold: GuardCooldown},
		{name: "replica guards do not hold scale-in", p: replicas, replicas: 3, r: shard(700, 0, 0), st: api.AutoscaleState{BelowSince: at(now, -300)}, rguards: []Guard{{GuardBacklog, "x"}}, action: ScaleIn, to: 2},
		{name: "at min: no scale-in", p: replicas, replicas: 1, r: shard(0, 0, 0), st: api.AutoscaleState{BelowSince: at(now, -3000)}},
		{name: "below min", p: replicas, replicas: 0, r: shard(0, 0, 0), action: ScaleOut, to: 1},
		{name: "cpu unread after the stabilisation: held, not scaled in on a zero", p: replicas, replicas: 3, r: unread(shard(0, 0, 0)), st: api.AutoscaleState{BelowSince: at(now, -300)}, action: ScaleIn, hold: GuardUnknown},
		{name: "cpu unread after the scale-out window: held", p: replicas, replicas: 2, r: unread(shard(0, 0, 0)), st: api.AutoscaleState{AboveSince: at(now, -10)}, action: ScaleOut, hold: GuardUnknown},
		{name: "cpu unread inside the windows: nothing", p: replicas, replicas: 2, r: unread(shard(0, 0, 0)), st: api.AutoscaleState{AboveSince: at(now, -5)}},
		{name: "memory high, not long enough", p: mem, replicas: 2, r: shard(0, 85*mb, 100*mb), st: api.AutoscaleState{MemoryHighSince: at(now, -4)}},
		{name: "memory high for a while", p: mem, replicas: 2, r: shard(0, 85*mb, 100*mb), st: api.AutoscaleState{MemoryHighSince: at(now, -5)}, action: MemoryUp, to: 150 * mb},
		{name: "memory step capped at max", p: mem, replicas: 2, r: shard(0, 130*mb, 150*mb), st: api.AutoscaleState{MemoryHighSince: at(now, -5)}, action: MemoryUp, to: 200 * mb},
		{name: "memory at max", p: mem, replicas: 2, r: shard(0, 190*mb, 200*mb), st: api.AutoscaleState{MemoryHighSince: at(now, -5)}, action: MemoryUp, hold: GuardLimit},
		{name: "memory raise cooldown", p: mem, replicas: 2, r: shard(0, 85*mb, 100*mb), st: api.AutoscaleState{MemoryHighSince: at(now, -5), LastMemoryUpAt: at(now, -10)}, action: MemoryUp, hold: GuardCooldown},
		{name: "memory low for the stabilisation: lowered, headroom kept", p: mem, replicas: 2, r: shard(0, 20*mb, 150*mb), st: api.AutoscaleState{MemoryLowSince: at(now, -60)}, action: MemoryDown, to: 100 * mb},
		{name: "memory low but headroom: no change under 10 %", p: mem, replicas: 2, r: shard(0, 40*mb, 100*mb), st: api.AutoscaleState{MemoryLowSince: at(now, -600)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs := api.ClusterSpec{Shards: 1, Replicas: c.replicas}
			if c.r.Shards[0].MaxmemoryBytes > 0 {
				cs.Maxmemory = FormatSize(c.r.Shards[0].MaxmemoryBytes)
			}
			d, st := Decide(Input{Now: now, Policy: c.p, Spec: cs, Readings: c.r, State: c.st, Guards: c.guards, ReplicaGuards: c.rguards})
			if d.Action != c.action {
				t.Fatalf("action %q (%+v), want %q", d.Action, d, c.action)
			}
			hold := ""
			if d.Hold != nil {
				hold = d.Hold.Name
			}
			if hold != c.hold {
				t.Fatalf("hold %q (%+v), want %q", hold, d.Hold, c.hold)
			}
			if c.hold == "" && c.action != "" && d.To != c.to {
				t.Fatalf("to %d, want %d", d.To, c.to)
			}
			if c.p.Replicas != nil && c.r.Signal > c.p.Replicas.Target && st.AboveSince == nil {
				t.Fatalf("signal above target but no AboveSince")
			}
			if c.r.Unread != "" && (!reflect.DeepEqual(st.AboveSince, c.st.AboveSince) || !reflect.DeepEqual(st.BelowSince, c.st.BelowSince)) {
				t.Fatalf("a round without a reading moved the windows: above %v below %v, was %v %v", st.AboveSince, st.BelowSince, c.st.AboveSince, c.st.BelowSince)
			}
		})
	}
}

// TestTaken: a change starts its cooldown and resets its window, so the
// signal must hold again for a whole window before the next one.
func TestTaken(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	st := Taken(api.AutoscaleState{AboveSince: &now, LastHold: "scale-out/bgsave"}, Decision{Action: ScaleOut}, now, "j_1")
	if st.LastScaleOutAt == nil || !st.LastScaleOutAt.Equal(now) || st.AboveSince != nil || st.LastJob != "j_1" || st.LastHold != "" {
		t.Fatalf("%+v", st)
	}
}

// TestBacklog: the backlog must hold twice the writes of a sync's time.
func TestBacklog(t *testing.T) {
	sync, need := Backlog(100e6, 2, 1e6)
	if sync != 4*time.Second || need != 8e6 {
		t.Fatalf("sync %s need %d, want 4s 8000000", sync, need)
	}
	if _, need := Backlog(0, 0, 0); need != 0 {
		t.Fatalf("no writes need %d", need)
	}
	if g := MemoryRoom("m", 10, 5, "this host"); len(g) != 1 || !strings.Contains(g[0].Message, "this host has 5") {
		t.Fatalf("%+v", g)
	}
	if g := MemoryRoom("m", 10, 0, ""); g != nil {
		t.Fatalf("unknown room must not hold: %+v", g)
	}
}

// TestReadFirstRound: without a previous sample a replica's CPU is not
// read (Unread says why); the next round reads it.
func TestReadFirstRound(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cs := api.ClusterSpec{Shards: 1, Replicas: 1}
	obs := func(at time.Time, cpu string) topology.Observation {
		return topology.Observation{At: at, Redis: []topology.RedisObs{
			{In: store.Instance{Name: "a-0-0", Shard: 0}, Up: true, Info: redisclient.Info{"role": "master", "run_id": "m", "used_cpu_sys": "1", "used_cpu_user": "1"}},
			{In: store.Instance{Name: "a-0-1", Shard: 0}, Up: true, Info: redisclient.Info{"role": "slave", "run_id": "r", "used_cpu_sys": cpu, "used_cpu_user": "0"}},
		}}
	}
	r, next := Read(cs, api.MetricCPU, obs(t0, "10"), nil)
	if r.Unread == "" || !strings.Contains(r.Unread, "a-0-1") || r.Signal != 0 {
		t.Fatalf("first round: %+v", r)
	}
	r, _ = Read(cs, api.MetricCPU, obs(t0.Add(2*time.Second), "11"), next)
	if r.Unread != "" || r.Signal != 50 {
		t.Fatalf("second round: unread %q signal %g, want 50", r.Unread, r.Signal)
	}
	if r, _ := Read(cs, api.MetricOps, obs(t0, "10"), nil); r.Unread != "" {
		t.Fatalf("ops falls back to instantaneous_ops_per_sec, but unread %q", r.Unread)
	}
}

// TestObservedGuards: a master's dump for a replica is the full sync (not
// a BGSAVE); a BGSAVE of its own is bgsave; an AOF rewrite and a
// replica's own sync are named as such.
func TestObservedGuards(t *testing.T) {
	cs := api.ClusterSpec{Shards: 1, Replicas: 1}
	obs := func(master, replica redisclient.Info) topology.Observation {
		return topology.Observation{Redis: []topology.RedisObs{
			{In: store.Instance{Name: "a-0-0"}, Up: true, Info: master},
			{In: store.Instance{Name: "a-0-1"}, Up: true, Info: replica},
		}}
	}
	names := func(gs []Guard) string {
		var out []string
		for _, g := range gs {
			out = append(out, g.Name)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		name            string
		master, replica redisclient.Info
		want            string
	}{
		{"quiet", redisclient.Info{"role": "master"}, redisclient.Info{"role": "slave"}, ""},
		{"bgsave of its own", redisclient.Info{"role": "master", "rdb_bgsave_in_progress": "1"}, redisclient.Info{"role": "slave"}, GuardBgsave},
		{"dump for a replica", redisclient.Info{"role": "master", "rdb_bgsave_in_progress": "1", "connected_slaves": "1", "slave0": "ip=127.0.0.1,port=1,state=wait_bgsave,offset=0,lag=0"},
			redisclient.Info{"role": "slave", "master_sync_in_progress": "1"}, GuardFullSync + "," + GuardFullSync},
		{"aof rewrite", redisclient.Info{"role": "master", "aof_rewrite_in_progress": "1"}, redisclient.Info{"role": "slave"}, GuardAOFRewrite},
	} {
		if got := names(ObservedGuards(cs, "a", obs(c.master, c.replica))); got != c.want {
			t.Errorf("%s: guards %q, want %q", c.name, got, c.want)
		}
	}
}

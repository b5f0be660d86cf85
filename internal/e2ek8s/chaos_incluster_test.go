package e2ek8s

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/redis-manager/redis-manager/api"
)

// TestChaosInCluster: TestChaosPods with the manager in the cluster (the
// chart's Deployment, 2 replicas, one leader on the Lease) and its pods
// among the victims. Random deletions, each graceful or forced with grace
// 0, of: the master's pod, a replica's, a Sentinel's, the leading
// manager's, the standby manager's, and the leading manager's pod right
// before the master's (the manager that would force the fast failover is
// the one that died), under WAIT-1 writes through the -sentinel Service for
// REDIS_MANAGER_K8S_CHAOS_DURATION (default 90s; the test takes 25-50 s
// more). Every kind is drawn once, in a random order, before any
// is drawn again, so a short run still has each. After each deletion: the
// pods replaced, exactly one leader (a new one at a higher epoch when the
// leader went, the same one when the standby went), the cluster healed
// exactly (heal_test.go), the writes resumed. At the end: exactly one
// leader, holding the Lease; every Sentinel exact, the replicas back to
// spec (also in the API's status); no acknowledged write lost (values
// compared); the manager's events hold exactly one failover per master
// change seen, oldMaster → newMaster; no "forbidden" in the managers'
// logs. REDIS_MANAGER_K8S_CHAOS_SEED replays the choices.
func TestChaosInCluster(t *testing.T) {
	duration, rng := chaosSettings(t, 90*time.Second)
	n := newNode(t, nodeOptions{NoManager: true})
	ic := installChart(n, nil)
	_, leader, epoch := ic.waitOneLeader(time.Minute)
	ctx := context.Background()
	created := time.Now()
	ic.createReady(api.CreateClusterRequest{Name: "x", Shards: intp(1), Replicas: intp(2), Sentinels: intp(3)})
	t.Logf("TIMING create 1x2x3 through the Service -> Ready: %.1f s", time.Since(created).Seconds())
	creds, err := ic.Client.Credentials(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	h := startHealCluster(n, "x", 1, 2, creds)
	masters := h.waitExact("before the chaos", time.Minute)
	t.Logf("manager leader %s at epoch %d, master %s", leader, epoch, masters[0])

	type masterChange struct {
		fault            int
		old, new, victim string
		at               time.Time
	}
	var changes []masterChange
	kinds := []string{"master", "replica", "sentinel", "manager leader", "manager standby", "manager leader + master"}
	var deck, faults []string
	counts := map[string]int{}
	var heals = map[string][]float64{}
	chaosStart := time.Now()
	end := chaosStart.Add(duration)
	for len(faults) < len(kinds) || time.Now().Before(end) {
		if len(deck) == 0 {
			deck = append([]string(nil), kinds...)
			rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		kind := deck[0]
		deck = deck[1:]
		fault := len(faults) + 1
		_, leader, epoch = ic.waitOneLeader(time.Minute)
		var what string
		var at time.Time
		deleted := map[string]types.UID{}
		switch kind {
		case "master", "replica", "sentinel":
			pod := h.chaosPod(rng, kind, masters)
			opts, how := chaosGrace(rng)
			var uid types.UID
			uid, at = n.deleteForChaos(pod, opts)
			deleted[pod] = uid
			what = fmt.Sprintf("%s %s %s", kind, pod, how)
			counts[kind+" "+how]++
		case "manager leader", "manager standby":
			victim := leader
			if kind == "manager standby" {
				victim = ""
				for _, p := range ic.managerPods() {
					if p.Name != leader {
						victim = p.Name
					}
				}
			}
			opts, how := chaosGrace(rng)
			_, at = n.deleteForChaos(victim, opts)
			what = fmt.Sprintf("%s %s %s", kind, victim, how)
			counts[kind+" "+how]++
		case "manager leader + master":
			pod := podOf(masters[0])
			mOpts, mHow := chaosGrace(rng)
			rOpts, rHow := chaosGrace(rng)
			_, at = n.deleteForChaos(leader, mOpts)
			uid, _ := n.deleteForChaos(pod, rOpts)
			deleted[pod] = uid
			what = fmt.Sprintf("manager leader %s %s, then master %s %s", leader, mHow, pod, rHow)
			counts["manager leader "+mHow+" + master "+rHow]++
		}
		faults = append(faults, what)
		t.Logf("fault %d at %s: %s", fault, at.Format("15:04:05.000"), what)
		if strings.HasPrefix(kind, "manager leader") {
			next, when := ic.newLeaderAfter(leader, time.Minute)
			t.Logf("TIMING fault %d (%s): %s leads after %.2f s", fault, what, next, when.Sub(at).Seconds())
		}
		prev := masters[0]
		masters = h.healedAfter(fault, what, at, deleted)
		ic.waitReplicasReady(2, 2*time.Minute)
		_, l2, e2 := ic.waitOneLeader(time.Minute)
		switch {
		case strings.HasPrefix(kind, "manager leader") && (l2 == leader || e2 <= epoch):
			t.Errorf("fault %d (%s): leader %s at epoch %d, before %s at %d: want a new leader at a higher epoch", fault, what, l2, e2, leader, epoch)
		case !strings.HasPrefix(kind, "manager leader") && (l2 != leader || e2 != epoch):
			t.Errorf("fault %d (%s): the leader moved without cause: %s@%d -> %s@%d", fault, what, leader, epoch, l2, e2)
		}
		heals[kind] = append(heals[kind], time.Since(at).Seconds())
		if masters[0] != prev {
			changes = append(changes, masterChange{fault: fault, old: prev, new: masters[0], victim: kind, at: at})
			t.Logf("fault %d: master %s -> %s", fault, prev, masters[0])
		} else if kind == "master" || kind == "manager leader + master" {
			t.Errorf("fault %d (%s): the master's pod went and the master is still %s", fault, what, prev)
		}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
	}
	t.Logf("%d faults in %.0f s: %v", len(faults), time.Since(chaosStart).Seconds(), faults)

	masters = h.waitExact("after the chaos", time.Minute)
	pods, leader, epoch := ic.waitOneLeader(time.Minute)
	if holder := ic.leaseHolder(); holder != leader {
		t.Errorf("the Lease is held by %q, the leader is %s", holder, leader)
	}
	cl := ic.waitPhase("x", "Ready", time.Minute)
	if len(cl.Status.Shards) != 1 || len(cl.Status.Shards[0].Replicas) != 2 {
		t.Errorf("cluster status after the chaos: %+v, want 1 shard with 2 replicas", cl.Status)
	}
	h.checkNoLoss(masters)

	// Every master change has its failover event, and no other failover
	// was recorded. (An event waits up to 10 s for every Sentinel to name
	// the new master before it is written.)
	var evs []api.Event
	var problem string
	var matched []string
	fastByKind := map[string]int{}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		all, err := ic.Client.ClusterEvents(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		evs = evs[:0]
		for _, e := range all {
			if e.Type == "failover" && !e.At.Before(chaosStart.Add(-time.Second)) {
				evs = append(evs, e)
			}
		}
		sort.Slice(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
		problem, matched = "", nil
		clear(fastByKind)
		used := map[int]bool{}
		for _, c := range changes {
			found := -1
			for i, e := range evs {
				if !used[i] && e.Details["oldMaster"] == c.old && e.Details["newMaster"] == c.new && !e.At.Before(c.at.Add(-time.Second)) {
					found = i
					break
				}
			}
			if found < 0 {
				problem += fmt.Sprintf("; no failover event for fault %d (%s): %s -> %s", c.fault, c.victim, c.old, c.new)
				continue
			}
			used[found] = true
			e := evs[found]
			fast, _ := e.Details["fast"].(bool)
			if fast {
				fastByKind[c.victim]++
			}
			matched = append(matched, fmt.Sprintf("fault %d (%s): failover event at %s, fast %v: %s", c.fault, c.victim, e.At.Format("15:04:05.000"), fast, e.Message))
		}
		if len(evs) != len(changes) {
			problem += fmt.Sprintf("; %d failover events for %d master changes", len(evs), len(changes))
		}
		if problem == "" || time.Now().After(deadline) {
			break
		}
	}
	for _, m := range matched {
		t.Log(m)
	}
	if problem != "" {
		for _, e := range evs {
			t.Logf("failover event at %s: %s %v", e.At.Format("15:04:05.000"), e.Message, e.Details)
		}
		t.Errorf("the manager's failover events%s", problem)
	}
	ic.noForbidden(pods)

	var kindsDone []string
	for k, c := range counts {
		kindsDone = append(kindsDone, fmt.Sprintf("%s: %d", k, c))
	}
	sort.Strings(kindsDone)
	t.Logf("deletions: %s", strings.Join(kindsDone, ", "))
	for _, k := range kinds {
		s := heals[k]
		sort.Float64s(s)
		if len(s) > 0 {
			t.Logf("TIMING %s: healed after %s s (%d)", k, fmtFloats(s), len(s))
		}
	}
	t.Logf("%d master changes, each with its failover event (forced by the fast path: %v); leader %s at epoch %d at the end", len(changes), fastByKind, leader, epoch)
}

func fmtFloats(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = fmt.Sprintf("%.1f", f)
	}
	return strings.Join(s, " ")
}

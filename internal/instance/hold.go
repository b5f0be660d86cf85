package instance

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/sentinel"
)

// A master that restarts (its process killed, the kubelet starting its
// container again at once) is still named master by every Sentinel: its
// death was shorter than down-after-milliseconds, and the failover the
// manager forces on it may still be under way. Booting it as master then
// would serve what its volume holds (its last save, or nothing), while a
// replica holds every write a client saw acknowledged (WAIT 1); the replicas
// would resync to the older data and the writes would be gone. So an
// instance that booted before, named master by every answering Sentinel,
// holds its boot (its port closed, as a dead master's) while a replica
// could take over: until the Sentinels name another master (it then boots
// as its replica), or for at most down-after-milliseconds plus
// failover-timeout, after which it boots as the Sentinels say (no
// failover came: nothing could replace it).
//
// A Sentinel in TILT fails nothing over (it entered TILT because its timer
// ran more than 2 s late: the process was not scheduled, as on a loaded
// node; it leaves TILT only after its TILT period without another stall,
// 30 s by default). Seen in the chaos test: the master's pod deleted while
// no manager led, every Sentinel in TILT from 5 s after, the hold's 15 s
// spent before TILT ended, and the old master booted as master with no
// failover. So while an answering Sentinel is in TILT the hold goes on,
// until down-after-milliseconds plus failover-timeout after the last
// Sentinel left TILT (HoldDeadline), at most holdTiltMax more.

// HoldMasterBoot tells whether a master's boot is held, from one Sentinel's
// SENTINEL REPLICAS view of the shard: some replica is up to Sentinel (not
// down, not disconnected) and may be promoted (priority above 0). It is
// pure.
func HoldMasterBoot(replicas []map[string]string) bool {
	for _, r := range replicas {
		if r["slave-priority"] == "0" {
			continue
		}
		up := true
		for _, f := range strings.Split(r["flags"], ",") {
			switch f {
			case "s_down", "o_down", "disconnected":
				up = false
			}
		}
		if up {
			return true
		}
	}
	return false
}

// holdPoll is how often a held boot asks the Sentinels again.
const holdPoll = 100 * time.Millisecond

// holdTiltPoll is how often a held boot asks the Sentinels whether they
// are in TILT.
const holdTiltPoll = 500 * time.Millisecond

// holdDefault bounds a held boot when no Sentinel tells its
// down-after-milliseconds and failover-timeout (Sentinel's defaults: 30 s
// and 3 min are longer than the manager's 5 s and 10 s).
const holdDefault = 15 * time.Second

// holdTiltMax is how much longer than its bound a hold may last because
// Sentinels are in TILT: Sentinel's default TILT period, the longest a
// single stall keeps a Sentinel from failing over.
const holdTiltMax = 30 * time.Second

// HoldDeadline is when a held boot that began at start stops waiting for a
// failover: bound after start, or bound after lastTilt (the last time an
// answering Sentinel was seen in TILT; zero if none was) if later, and
// never past start + holdTiltMax + bound. It is pure.
func HoldDeadline(start, lastTilt time.Time, bound time.Duration) time.Time {
	d := start.Add(bound)
	if t := lastTilt.Add(bound); !lastTilt.IsZero() && t.After(d) {
		d = t
	}
	if limit := start.Add(holdTiltMax + bound); d.After(limit) {
		d = limit
	}
	return d
}

// holdMasterBoot holds the boot of a restarted master (see above) and
// returns the decision to boot with.
func holdMasterBoot(ctx context.Context, plan platform.BootPlan, self string, ask Asker, d Decision, log *slog.Logger) Decision {
	hold, bound := false, holdDefault
	for _, s := range plan.Sentinels {
		reps, limit, err := sentinelReplicasView(ctx, s, plan.SentinelPassword, plan.MasterName)
		if err != nil {
			continue
		}
		hold, bound = HoldMasterBoot(reps), max(limit, time.Second)
		break
	}
	if !hold {
		return d
	}
	start := time.Now()
	var lastTilt, tiltAsked time.Time
	tilted := false
	log.Warn("restarted while Sentinels name this instance master: boot held until they name another or a failover can no longer come",
		"self", self, "holdAtMost", bound.String())
	for time.Now().Before(HoldDeadline(start, lastTilt, bound)) {
		select {
		case <-ctx.Done():
			return d
		case <-time.After(holdPoll):
		}
		nd := Decide(ctx, plan, self, ask)
		if nd.ReplicaOf != "" {
			return nd
		}
		if len(nd.Answers) > 0 {
			d = nd
		}
		if time.Since(tiltAsked) >= holdTiltPoll {
			tiltAsked = time.Now()
			n := tiltedSentinels(ctx, plan)
			if n > 0 {
				lastTilt = time.Now()
			}
			if (n > 0) != tilted {
				tilted = n > 0
				log.Warn("Sentinels in TILT fail nothing over: the hold lasts until they left TILT for down-after-milliseconds plus failover-timeout",
					"self", self, "tilted", n, "holdUntil", HoldDeadline(start, lastTilt, bound).Format(time.RFC3339Nano))
			}
		}
	}
	log.Warn("no failover came: booting as master as the Sentinels say", "self", self, "heldFor", time.Since(start).Round(time.Millisecond).String())
	return d
}

// tiltedSentinels asks every Sentinel of the plan at once whether it is
// in TILT (AskTimeout each) and counts those that are.
func tiltedSentinels(ctx context.Context, plan platform.BootPlan) int {
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	for _, s := range plan.Sentinels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewSentinelClient(&redis.Options{Addr: s, Password: plan.SentinelPassword,
				DialTimeout: AskTimeout, ReadTimeout: AskTimeout, WriteTimeout: AskTimeout, MaxRetries: -1})
			defer c.Close()
			sctx, cancel := context.WithTimeout(ctx, AskTimeout)
			defer cancel()
			if t, err := sentinel.Tilted(sctx, c); err == nil && t {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n
}

// sentinelReplicasView asks one Sentinel for its view of the shard's
// replicas and how long a failover of it may take to come
// (down-after-milliseconds + failover-timeout).
func sentinelReplicasView(ctx context.Context, sentinel, password, masterName string) ([]map[string]string, time.Duration, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: sentinel, Password: password,
		DialTimeout: AskTimeout, ReadTimeout: AskTimeout, WriteTimeout: AskTimeout, MaxRetries: -1})
	defer c.Close()
	actx, cancel := context.WithTimeout(ctx, AskTimeout)
	defer cancel()
	m, err := c.Master(actx, masterName).Result()
	if err != nil {
		return nil, 0, err
	}
	reps, err := c.Replicas(actx, masterName).Result()
	if err != nil {
		return nil, 0, err
	}
	down, _ := strconv.Atoi(m["down-after-milliseconds"])
	fo, _ := strconv.Atoi(m["failover-timeout"])
	limit := holdDefault
	if down > 0 && fo > 0 {
		limit = time.Duration(down+fo) * time.Millisecond
	}
	return reps, limit, nil
}

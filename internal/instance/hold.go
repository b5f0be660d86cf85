package instance

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/internal/platform"
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

// holdDefault bounds a held boot when no Sentinel tells its
// down-after-milliseconds and failover-timeout (Sentinel's defaults: 30 s
// and 3 min are longer than the manager's 5 s and 10 s).
const holdDefault = 15 * time.Second

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
	log.Warn("restarted while Sentinels name this instance master: boot held until they name another or a failover can no longer come",
		"self", self, "holdAtMost", bound.String())
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
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
	}
	log.Warn("no failover came: booting as master as the Sentinels say", "self", self)
	return d
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

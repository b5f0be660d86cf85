package instance

import (
	"context"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
)

// AskTimeout bounds each Sentinel's answer to the boot question.
const AskTimeout = time.Second

// Asker asks one Sentinel which address it names master of a shard.
type Asker interface {
	MasterAddr(ctx context.Context, sentinel, password, masterName string) (string, error)
}

// Decision is the outcome of Decide.
type Decision struct {
	// ReplicaOf is the address to replicate, "" to boot as master.
	ReplicaOf string
	// Answers are the addresses the answering Sentinels named, sorted.
	Answers []string
}

// Decide decides whom a redis-server at self replicates when it boots: it
// asks every Sentinel of the plan at once (AskTimeout each) and applies
// Role to the answers.
func Decide(ctx context.Context, plan platform.BootPlan, self string, ask Asker) Decision {
	answers := Answers(ctx, plan, ask)
	return Decision{ReplicaOf: Role(answers, self, plan.PlannedMaster), Answers: answers}
}

// Answers asks every Sentinel of the plan which address it names master;
// unknown names and unreachable Sentinels give no answer.
func Answers(ctx context.Context, plan platform.BootPlan, ask Asker) []string {
	var mu sync.Mutex
	answers := []string{}
	var wg sync.WaitGroup
	for _, s := range plan.Sentinels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, AskTimeout)
			defer cancel()
			a, err := ask.MasterAddr(sctx, s, plan.SentinelPassword, plan.MasterName)
			if err != nil || a == "" {
				return
			}
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Strings(answers)
	return answers
}

// Role decides whom an instance replicates when it boots. It boots as
// master ("") only when every answering Sentinel names it master (or, when
// no Sentinel knows the shard yet because it is being created, when it is
// the planned master). Otherwise it replicates the address most Sentinels
// name other than itself (the lowest on a tie): during a failover some
// Sentinels may still name it, and booting as master then, perhaps with old
// or no data, is how other operators lost data.
func Role(sentinelAnswers []string, self, plannedMaster string) string {
	if len(sentinelAnswers) == 0 {
		if plannedMaster == self {
			return ""
		}
		return plannedMaster
	}
	counts := map[string]int{}
	best, bestN := "", 0
	for _, a := range sentinelAnswers {
		if a == self {
			continue
		}
		counts[a]++
		if n := counts[a]; n > bestN || (n == bestN && a < best) {
			best, bestN = a, n
		}
	}
	return best // "" when every answer names self
}

// PoolAsker asks through pooled connections: the manager's, where many
// instances boot at once (a create) and new connections would each take an
// ephemeral port.
type PoolAsker struct{ Pool *redisclient.Pool }

// MasterAddr implements Asker with SENTINEL GET-MASTER-ADDR-BY-NAME.
func (a PoolAsker) MasterAddr(ctx context.Context, sentinel, password, masterName string) (string, error) {
	return masterAddr(ctx, a.Pool.Sentinel(sentinel, password), masterName)
}

func masterAddr(ctx context.Context, c *redis.SentinelClient, masterName string) (string, error) {
	res, err := c.GetMasterAddrByName(ctx, masterName).Result()
	if err != nil {
		return "", err
	}
	if len(res) != 2 {
		return "", nil
	}
	return net.JoinHostPort(res[0], res[1]), nil
}

// DialAsker asks with a short-lived connection per question: a pod's
// entrypoint asks once and has no pool.
type DialAsker struct{}

// MasterAddr implements Asker with SENTINEL GET-MASTER-ADDR-BY-NAME.
func (DialAsker) MasterAddr(ctx context.Context, sentinel, password, masterName string) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: sentinel, Password: password,
		DialTimeout: AskTimeout, ReadTimeout: AskTimeout, WriteTimeout: AskTimeout, MaxRetries: -1})
	defer c.Close()
	return masterAddr(ctx, c, masterName)
}

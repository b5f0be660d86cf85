package redisclient

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pool hands out clients keyed by address and password.
type Pool struct {
	mu        sync.Mutex
	redis     map[string]*redis.Client
	sentinels map[string]*redis.SentinelClient

	gate Gate
	name string
}

// Gate runs one command (or pipeline) of ctx, or refuses it with an error
// without sending anything. The manager's gate refuses the commands of a
// leader whose term is over (see internal/leader).
type Gate func(ctx context.Context, op string, send func() error) error

// SetGate makes every command of every client the pool hands out from now
// on pass through g, and names the clients' connections (CLIENT SETNAME),
// so an instance's CLIENT LIST tells which manager is connected. Call it
// before the first client is handed out.
func (p *Pool) SetGate(g Gate, clientName string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate, p.name = g, clientName
}

// gateHook sends every command through the pool's gate.
type gateHook struct{ gate Gate }

func (gateHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := h.gate(ctx, commandName(cmd), func() error { return next(ctx, cmd) })
		if err != nil && cmd.Err() == nil {
			cmd.SetErr(err)
		}
		return err
	}
}

func (h gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := h.gate(ctx, "pipeline", func() error { return next(ctx, cmds) })
		if err != nil {
			for _, c := range cmds {
				if c.Err() == nil {
					c.SetErr(err)
				}
			}
		}
		return err
	}
}

// commandName is "sentinel failover", "config set", "info": the command
// and, for container commands, its subcommand.
func commandName(cmd redis.Cmder) string {
	name := cmd.Name()
	if args := cmd.Args(); len(args) > 1 {
		switch name {
		case "sentinel", "config", "client", "cluster":
			return fmt.Sprintf("%s %v", name, args[1])
		}
	}
	return name
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{redis: map[string]*redis.Client{}, sentinels: map[string]*redis.SentinelClient{}}
}

func (p *Pool) options(addr, password string) *redis.Options {
	return &redis.Options{
		ClientName:      p.name,
		Addr:            addr,
		Password:        password,
		Protocol:        2,
		DisableIdentity: true,
		DialTimeout:     500 * time.Millisecond,
		ReadTimeout:     2 * time.Second,
		WriteTimeout:    2 * time.Second,
		PoolSize:        4,
		MaxRetries:      -1, // callers retry with their own deadlines
		// A dead instance must be seen dead at once, not after five dial
		// attempts with back-off: the control loop observes again anyway.
		DialerRetries: 1,
	}
}

// Redis returns the client of a redis-server.
func (p *Pool) Redis(addr, password string) *redis.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := addr + "\x00" + password
	c, ok := p.redis[key]
	if !ok {
		c = redis.NewClient(p.options(addr, password))
		if p.gate != nil {
			c.AddHook(gateHook{p.gate})
		}
		p.redis[key] = c
	}
	return c
}

// Sentinel returns the client of a Sentinel.
func (p *Pool) Sentinel(addr, password string) *redis.SentinelClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := addr + "\x00" + password
	c, ok := p.sentinels[key]
	if !ok {
		o := p.options(addr, password)
		c = redis.NewSentinelClient(o)
		if p.gate != nil {
			c.AddHook(gateHook{p.gate})
		}
		p.sentinels[key] = c
	}
	return c
}

// Forget closes and drops the clients of an address (instance removed).
func (p *Pool) Forget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.redis {
		if strings.HasPrefix(k, addr+"\x00") {
			c.Close()
			delete(p.redis, k)
		}
	}
	for k, c := range p.sentinels {
		if strings.HasPrefix(k, addr+"\x00") {
			c.Close()
			delete(p.sentinels, k)
		}
	}
}

// Close closes every client.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.redis {
		c.Close()
	}
	for _, c := range p.sentinels {
		c.Close()
	}
	p.redis, p.sentinels = map[string]*redis.Client{}, map[string]*redis.SentinelClient{}
}

// Info is a parsed INFO reply.
type Info map[string]string

// ParseInfo parses the text of INFO.
func ParseInfo(text string) Info {
	info := Info{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			info[k] = v
		}
	}
	return info
}

// GetInfo runs INFO with the given sections.
func GetInfo(ctx context.Context, c *redis.Client, sections ...string) (Info, error) {
	text, err := c.Info(ctx, sections...).Result()
	if err != nil {
		return nil, err
	}
	return ParseInfo(text), nil
}

// Int returns a numeric field, 0 when absent.
func (i Info) Int(key string) int64 {
	n, _ := strconv.ParseInt(i[key], 10, 64)
	return n
}

// ConnectedReplica is one slaveN line of a master's INFO replication.
type ConnectedReplica struct {
	Addr   string
	State  string
	Offset int64
	Lag    int64
}

// Replicas returns the replicas a master lists.
func (i Info) Replicas() []ConnectedReplica {
	n := int(i.Int("connected_slaves"))
	out := make([]ConnectedReplica, 0, n)
	for k := 0; k < n; k++ {
		fields := map[string]string{}
		for _, kv := range strings.Split(i["slave"+strconv.Itoa(k)], ",") {
			if a, b, ok := strings.Cut(kv, "="); ok {
				fields[a] = b
			}
		}
		off, _ := strconv.ParseInt(fields["offset"], 10, 64)
		lag, _ := strconv.ParseInt(fields["lag"], 10, 64)
		out = append(out, ConnectedReplica{Addr: fields["ip"] + ":" + fields["port"], State: fields["state"], Offset: off, Lag: lag})
	}
	return out
}

// Keys sums the keys of every database in INFO keyspace.
func (i Info) Keys() int64 {
	var total int64
	for k, v := range i {
		if !strings.HasPrefix(k, "db") {
			continue
		}
		for _, kv := range strings.Split(v, ",") {
			if a, b, ok := strings.Cut(kv, "="); ok && a == "keys" {
				n, _ := strconv.ParseInt(b, 10, 64)
				total += n
			}
		}
	}
	return total
}

// Pairs turns a RESP2 flat array of field/value pairs (as SENTINEL REPLICAS
// returns for each entry) into a map.
func Pairs(v any) map[string]string {
	out := map[string]string{}
	list, _ := v.([]any)
	for i := 0; i+1 < len(list); i += 2 {
		k, _ := list[i].(string)
		val, _ := list[i+1].(string)
		out[k] = val
	}
	return out
}

package redisclient

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
)

// Pool hands out clients keyed by address and password.
//
// go-redis opens a circuit breaker once PoolSize dials in a row have failed:
// the client then answers the last dial error without dialling, until a
// background probe (once a second) succeeds. For an instance that is about
// to start that turns a few refused dials into up to a second of refusals
// after it is up (creates failed at record-ready with "master … is down").
// So a client whose dials keep failing is retired before its breaker can
// open, and the next caller gets a fresh one that dials at once.
type Pool struct {
	mu        sync.Mutex
	redis     map[string]*pooled[*redis.Client]
	sentinels map[string]*pooled[*redis.SentinelClient]
	retired   []io.Closer // closed after retireGrace, or by Close
	closed    bool

	gate Gate
	name string
	// dial, when set, dials every connection (a platform that knows where
	// its instances' names point).
	dial DialFunc
}

// DialFunc dials addr ("host:port").
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// SetDialer makes every client the pool hands out from now on dial with d:
// the Kubernetes platform resolves its pods' DNS names from what it
// watches, so the manager needs no cluster DNS and never asks it for a
// name before the pod exists (which the DNS would then deny for its
// negative TTL, to every client). Call it before the first client is
// handed out.
func (p *Pool) SetDialer(d DialFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dial = d
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

type pooled[C io.Closer] struct {
	client C
	fails  atomic.Int32 // dial failures in a row
}

const (
	poolSize = 4
	// retireAfter dial failures in a row, one before go-redis' breaker.
	retireAfter = poolSize - 1
	// retireGrace lets calls that hold a retired client finish.
	retireGrace = 30 * time.Second
)

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{redis: map[string]*pooled[*redis.Client]{}, sentinels: map[string]*pooled[*redis.SentinelClient]{}}
}

// connBufferSize is the read and the write buffer of each connection.
const connBufferSize = 4 << 10

func (p *Pool) options(addr, password string, dialFailed func(bool)) *redis.Options {
	d := &net.Dialer{KeepAlive: 5 * time.Minute}
	dial := d.DialContext
	if p.dial != nil {
		dial = p.dial
	}
	return &redis.Options{
		ClientName:      p.name,
		Addr:            addr,
		Password:        password,
		Protocol:        2,
		DisableIdentity: true,
		DialTimeout:     500 * time.Millisecond,
		ReadTimeout:     2 * time.Second,
		WriteTimeout:    2 * time.Second,
		// A caller's deadline shorter than ReadTimeout ends the command
		// at that deadline (the observation's per-instance timeout), not
		// 2 s later.
		ContextTimeoutEnabled: true,
		PoolSize:              poolSize,
		// The manager holds a client per instance (1,000 and more): the
		// go-redis defaults (32 KiB read and write buffers per
		// connection, 128 KiB for pipelines) were most of its memory at
		// that scale (docs/monitoring.md, Scale). Replies longer than a
		// buffer are still read whole.
		ReadBufferSize:          connBufferSize,
		WriteBufferSize:         connBufferSize,
		PipelineReadBufferSize:  connBufferSize,
		PipelineWriteBufferSize: connBufferSize,
		MaxRetries:              -1, // callers retry with their own deadlines
		// A dead instance must be seen dead at once, not after five dial
		// attempts with back-off: the control loop observes again anyway.
		DialerRetries: 1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			dialFailed(err != nil)
			return c, err
		},
	}
}

// get returns the entry of key in m, making one with mk when there is none.
func get[C io.Closer](p *Pool, m map[string]*pooled[C], key string, mk func(dialFailed func(bool)) C) C {
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := m[key]; ok {
		return e.client
	}
	e := &pooled[C]{}
	e.client = mk(func(failed bool) {
		if !failed {
			e.fails.Store(0)
			return
		}
		if e.fails.Add(1) == retireAfter {
			retire(p, m, key, e)
		}
	})
	m[key] = e
	return e.client
}

// retire drops e from m, so the next caller gets a fresh client, and closes
// it after retireGrace.
func retire[C io.Closer](p *Pool, m map[string]*pooled[C], key string, e *pooled[C]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m[key] != e || p.closed {
		return
	}
	delete(m, key)
	p.retired = append(p.retired, e.client)
	time.AfterFunc(retireGrace, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i, c := range p.retired {
			if c == io.Closer(e.client) {
				p.retired = append(p.retired[:i], p.retired[i+1:]...)
				e.client.Close()
				return
			}
		}
	})
}

// Redis returns the client of a redis-server.
func (p *Pool) Redis(addr, password string) *redis.Client {
	return get(p, p.redis, addr+"\x00"+password, func(f func(bool)) *redis.Client {
		c := redis.NewClient(p.options(addr, password, f))
		if p.gate != nil {
			c.AddHook(gateHook{p.gate})
		}
		return c
	})
}

// Sentinel returns the client of a Sentinel.
func (p *Pool) Sentinel(addr, password string) *redis.SentinelClient {
	return get(p, p.sentinels, addr+"\x00"+password, func(f func(bool)) *redis.SentinelClient {
		c := redis.NewSentinelClient(p.options(addr, password, f))
		if p.gate != nil {
			c.AddHook(gateHook{p.gate})
		}
		return c
	})
}

// Forget closes and drops the clients of an address (instance removed).
func (p *Pool) Forget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	forget(p.redis, addr)
	forget(p.sentinels, addr)
}

func forget[C io.Closer](m map[string]*pooled[C], addr string) {
	for k, e := range m {
		if strings.HasPrefix(k, addr+"\x00") {
			e.client.Close()
			delete(m, k)
		}
	}
}

// Subscription is a pattern subscription on a client of its own, so that
// retiring a pooled client never ends it; Close closes both.
type Subscription struct {
	*redis.PubSub
	client *redis.Client
}

// Close ends the subscription and its client.
func (s *Subscription) Close() error {
	err := s.PubSub.Close()
	s.client.Close()
	return err
}

// PSubscribe subscribes to patterns on addr with a dedicated client, which
// re-subscribes after a lost connection for as long as the subscription
// lives.
func (p *Pool) PSubscribe(ctx context.Context, addr, password string, patterns ...string) *Subscription {
	p.mu.Lock()
	o := p.options(addr, password, func(bool) {})
	p.mu.Unlock()
	c := redis.NewClient(o)
	return &Subscription{PubSub: c.PSubscribe(ctx, patterns...), client: c}
}

// Close closes every client.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.redis {
		e.client.Close()
	}
	for _, e := range p.sentinels {
		e.client.Close()
	}
	for _, c := range p.retired {
		c.Close()
	}
	p.redis, p.sentinels, p.retired = map[string]*pooled[*redis.Client]{}, map[string]*pooled[*redis.SentinelClient]{}, nil
	p.closed = true
}

// Info is a parsed INFO reply.
type Info map[string]string

// ParseInfo parses the text of INFO.
func ParseInfo(text string) Info {
	// Sized once: the observe loop parses ~200 lines per instance per
	// round, and growing the map step by step was most of the parse.
	info := make(Info, strings.Count(text, "\n"))
	for line := range strings.Lines(text) {
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

// Float returns a decimal field, 0 when absent.
func (i Info) Float(key string) float64 {
	f, _ := strconv.ParseFloat(i[key], 64)
	return f
}

// ConnectedReplica is one slaveN line of a master's INFO replication.
type ConnectedReplica struct {
	Addr   string
	State  string
	Offset int64
	Lag    int64
}

// fieldList splits an INFO value made of comma-separated key=value pairs
// ("keys=3,expires=1,avg_ttl=0", "ip=…,port=…,state=online,…").
func fieldList(v string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(v, ",") {
		if a, b, ok := strings.Cut(kv, "="); ok {
			out[a] = b
		}
	}
	return out
}

func fieldInt(f map[string]string, key string) int64 {
	n, _ := strconv.ParseInt(f[key], 10, 64)
	return n
}

// Replicas returns the replicas a master lists.
func (i Info) Replicas() []ConnectedReplica {
	n := int(i.Int("connected_slaves"))
	out := make([]ConnectedReplica, 0, n)
	for k := 0; k < n; k++ {
		f := fieldList(i["slave"+strconv.Itoa(k)])
		out = append(out, ConnectedReplica{Addr: net.JoinHostPort(f["ip"], f["port"]), State: f["state"],
			Offset: fieldInt(f, "offset"), Lag: fieldInt(f, "lag")})
	}
	return out
}

// DBs returns the keys and the keys with an expiry of each database in
// INFO keyspace ("db0:keys=3,expires=1,avg_ttl=0"), nil when none.
func (i Info) DBs() map[string]api.DBKeys {
	var out map[string]api.DBKeys
	for k, v := range i {
		if !strings.HasPrefix(k, "db") {
			continue
		}
		if _, err := strconv.Atoi(k[2:]); err != nil {
			continue
		}
		f := fieldList(v)
		d := api.DBKeys{Keys: fieldInt(f, "keys"), Expires: fieldInt(f, "expires")}
		if out == nil {
			out = map[string]api.DBKeys{}
		}
		out[k] = d
	}
	return out
}

// Commands returns the calls and microseconds per command of INFO
// commandstats ("cmdstat_get:calls=21,usec=175,usec_per_call=8.33,…"),
// nil when the section was not asked for.
func (i Info) Commands() map[string]api.CommandStat {
	var out map[string]api.CommandStat
	for k, v := range i {
		cmd, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		f := fieldList(v)
		c := api.CommandStat{Calls: fieldInt(f, "calls"), Usec: fieldInt(f, "usec")}
		if out == nil {
			out = map[string]api.CommandStat{}
		}
		out[cmd] = c
	}
	return out
}

// Keys sums the keys of every database in INFO keyspace.
func (i Info) Keys() int64 {
	var total int64
	for _, d := range i.DBs() {
		total += d.Keys
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

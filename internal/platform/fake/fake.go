package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Ports every fake instance listens on.
const (
	RedisPort    = 6379
	SentinelPort = 26379
)

// Options tune a fake platform.
type Options struct {
	// Limit is how many instances fit (default 1000).
	Limit int
	// Asker answers the boot decision's questions; nil: no Sentinel
	// answers.
	Asker instance.Asker
}

// world is what exists, shared by the platforms of one world (a manager
// and the one that replaces it after a restart).
type world struct {
	mu    sync.Mutex
	insts map[platform.ID]*inst
	pid   int
}

type inst struct {
	kind     string
	endpoint platform.Endpoint
	running  bool
	pid      int
	seed     []byte
	config   string
	boots    int
	watchers []*Platform
}

// Platform is one manager's view of a fake world.
type Platform struct {
	w      *world
	opts   Options
	events chan platform.InstanceEvent
}

var _ platform.Platform = (*Platform)(nil)

// New returns a platform over an empty world.
func New(opts Options) *Platform {
	if opts.Limit == 0 {
		opts.Limit = 1000
	}
	return &Platform{w: &world{insts: map[platform.ID]*inst{}, pid: 1000}, opts: opts, events: make(chan platform.InstanceEvent, 1024)}
}

// Restart returns a new platform over the same world, as a restarted
// manager sees it: it watches nothing until Ensure or Recover.
func (p *Platform) Restart() *Platform {
	return &Platform{w: p.w, opts: p.opts, events: make(chan platform.InstanceEvent, 1024)}
}

type handle struct {
	Pid int `json:"pid"`
}

func (p *Platform) view(id platform.ID, in *inst) platform.Instance {
	out := platform.Instance{ID: id, Kind: in.kind, Endpoint: in.endpoint, Running: in.running}
	if in.running {
		out.Details = platform.Details{Pid: in.pid}
	}
	out.Handle, _ = json.Marshal(handle{Pid: out.Details.Pid})
	return out
}

func (p *Platform) watch(in *inst) {
	for _, w := range in.watchers {
		if w == p {
			return
		}
	}
	in.watchers = append(in.watchers, p)
}

// Reserve implements platform.Platform: a DNS name per instance, the
// kind's standard port.
func (p *Platform) Reserve(ctx context.Context, want []platform.Want, taken []platform.Endpoint) (map[platform.ID]platform.Endpoint, error) {
	used := map[platform.Endpoint]bool{}
	for _, e := range taken {
		used[e] = true
	}
	if len(taken)+len(want) > p.opts.Limit {
		return nil, fmt.Errorf("no room for %d more instances beside %d (limit %d): %w", len(want), len(taken), p.opts.Limit, platform.ErrNoCapacity)
	}
	out := map[platform.ID]platform.Endpoint{}
	for _, w := range want {
		e := platform.Endpoint{Host: w.ID.Name + "." + w.ID.Cluster + ".fake", Port: RedisPort}
		if w.Kind == platform.KindSentinel {
			e.Port = SentinelPort
		}
		if used[e] {
			return nil, fmt.Errorf("reserve %s: %s is taken", w.ID, e)
		}
		used[e] = true
		out[w.ID] = e
	}
	return out, nil
}

// Capacity implements platform.Platform.
func (p *Platform) Capacity(taken []platform.Endpoint) platform.Capacity {
	return platform.Capacity{Free: max(p.opts.Limit-len(taken), 0), Total: p.opts.Limit, Unit: "instances", Limit: "the fake platform's limit"}
}

// Ensure implements platform.Platform.
func (p *Platform) Ensure(ctx context.Context, s platform.InstanceSpec) (platform.Instance, error) {
	p.w.mu.Lock()
	in := p.w.insts[s.ID]
	if in == nil {
		in = &inst{kind: s.Kind, endpoint: s.Endpoint}
		p.w.insts[s.ID] = in
	}
	if in.running {
		p.watch(in)
		out := p.view(s.ID, in)
		p.w.mu.Unlock()
		out.Adopted = true
		return out, nil
	}
	in.kind, in.endpoint = s.Kind, s.Endpoint
	p.w.mu.Unlock()

	// The boot decision asks Sentinels: not under the lock.
	config, err := p.render(ctx, s, in)
	if err != nil {
		return platform.Instance{ID: s.ID, Kind: s.Kind, Endpoint: s.Endpoint}, fmt.Errorf("render config of %s: %w", s.ID.Name, err)
	}
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if p.w.insts[s.ID] != in { // removed meanwhile
		return platform.Instance{}, fmt.Errorf("start %s: removed while starting", s.ID.Name)
	}
	if in.running {
		p.watch(in)
		out := p.view(s.ID, in)
		out.Adopted = true
		return out, nil
	}
	in.config = config
	in.running = true
	in.boots++
	p.w.pid++
	in.pid = p.w.pid
	p.watch(in)
	return p.view(s.ID, in), nil
}

func (p *Platform) render(ctx context.Context, s platform.InstanceSpec, in *inst) (string, error) {
	p.w.mu.Lock()
	keep := s.Kind == platform.KindSentinel && in.config != ""
	old := in.config
	p.w.mu.Unlock()
	switch {
	case keep: // Sentinel owns its file after the first boot
		return old, nil
	case s.Kind == platform.KindSentinel && s.Sentinel != nil:
		c := *s.Sentinel
		c.Host, c.Port, c.Dir = s.Endpoint.Host, s.Endpoint.Port, "/data"
		return spec.RenderSentinel(c), nil
	case s.Kind == platform.KindRedis && s.Redis != nil:
		c := *s.Redis
		c.Host, c.Port, c.Dir = s.Endpoint.Host, s.Endpoint.Port, "/data"
		if s.Boot != nil {
			asker := p.opts.Asker
			if asker == nil {
				asker = noAnswers{}
			}
			c.ReplicaOf = instance.Decide(ctx, *s.Boot, s.Endpoint.String(), asker).ReplicaOf
		}
		return spec.RenderRedis(c), nil
	}
	return "", fmt.Errorf("no %s configuration in the spec", s.Kind)
}

type noAnswers struct{}

func (noAnswers) MasterAddr(context.Context, string, string, string) (string, error) {
	return "", errors.New("no Sentinel")
}

// Recover implements platform.Platform.
func (p *Platform) Recover(ctx context.Context, id platform.ID, h []byte) (platform.Instance, error) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	in := p.w.insts[id]
	if in == nil {
		return platform.Instance{ID: id}, nil
	}
	out := p.view(id, in)
	if in.running {
		p.watch(in)
		out.Adopted = true
	}
	return out, nil
}

// Remove implements platform.Platform.
func (p *Platform) Remove(ctx context.Context, id platform.ID) error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	delete(p.w.insts, id)
	return nil
}

// List implements platform.Platform.
func (p *Platform) List(ctx context.Context, cluster string) ([]platform.Instance, error) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	var out []platform.Instance
	for id, in := range p.w.insts {
		if id.Cluster == cluster {
			out = append(out, p.view(id, in))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.Name < out[j].ID.Name })
	return out, nil
}

// Watch implements platform.Platform. There is one stream; call it once.
func (p *Platform) Watch(ctx context.Context) (<-chan platform.InstanceEvent, error) {
	return p.events, nil
}

// Describe implements platform.Platform.
func (p *Platform) Describe(h []byte) platform.Details {
	var hd handle
	if len(h) == 0 || json.Unmarshal(h, &hd) != nil {
		return platform.Details{}
	}
	return platform.Details{Pid: hd.Pid}
}

// Seed implements platform.Platform: it fetches and checks the object like
// a real platform, and keeps it in memory.
func (p *Platform) Seed(ctx context.Context, id platform.ID, src platform.SeedSource) error {
	p.w.mu.Lock()
	if in := p.w.insts[id]; in != nil && in.running {
		p.w.mu.Unlock()
		return fmt.Errorf("seed %s: %w (pid %d)", id.Name, platform.ErrRunning, in.pid)
	}
	p.w.mu.Unlock()
	t, err := backup.OpenTarget(ctx, src.TargetURL)
	if err != nil {
		return fmt.Errorf("seed %s: %w", id.Name, err)
	}
	rc, err := t.Get(ctx, src.Key)
	if err != nil {
		return fmt.Errorf("seed %s: %w", id.Name, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	res, err := backup.VerifyCopy(&buf, rc)
	if err == nil {
		err = backup.CheckRecorded(res, src.Size, src.CRC64)
	}
	if err != nil {
		return fmt.Errorf("seed %s: %w", id.Name, err)
	}
	if src.Progress != nil {
		src.Progress(res.Bytes)
	}
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	in := p.w.insts[id]
	if in == nil {
		in = &inst{kind: platform.KindRedis}
		p.w.insts[id] = in
	}
	if in.running {
		return fmt.Errorf("seed %s: %w (pid %d)", id.Name, platform.ErrRunning, in.pid)
	}
	in.seed = buf.Bytes()
	return nil
}

// Kill ends an instance as a crash would: it stops running and every
// platform watching it reports a certain death.
func (p *Platform) Kill(id platform.ID) error {
	return p.die(id, true)
}

// Suspect reports a death the platform is not sure of (a node that stopped
// reporting); the instance keeps running.
func (p *Platform) Suspect(id platform.ID) error {
	return p.die(id, false)
}

func (p *Platform) die(id platform.ID, certain bool) error {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	in := p.w.insts[id]
	if in == nil || !in.running {
		return fmt.Errorf("%s does not run", id)
	}
	ev := platform.InstanceEvent{Type: platform.EventExited, ID: id, Certain: certain, Details: platform.Details{Pid: in.pid}, At: time.Now().UTC()}
	if certain {
		in.running = false
	}
	for _, w := range in.watchers {
		select {
		case w.events <- ev:
		default:
		}
	}
	if certain {
		in.watchers = nil
	}
	return nil
}

// Boot is what the fake knows of an instance's boots: how many, the config
// of the last one, and its seed.
type Boot struct {
	Boots  int
	Config string
	Seed   []byte
}

// Booted tells how an instance booted.
func (p *Platform) Booted(id platform.ID) (Boot, bool) {
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	in := p.w.insts[id]
	if in == nil {
		return Boot{}, false
	}
	return Boot{Boots: in.boots, Config: in.config, Seed: in.seed}, true
}

// RunTask implements platform.TaskRunner in this process: a fetch is
// instance.FetchSeed; counting keys reads the RDB's key count (there is no
// redis-server to load it into).
func (p *Platform) RunTask(ctx context.Context, t platform.Task, progress func(platform.TaskProgress)) (platform.TaskResult, error) {
	switch t.Kind {
	case platform.TaskFetch:
		src := t.Seed
		if progress != nil {
			src.Progress = func(n int64) { progress(platform.TaskProgress{Bytes: n}) }
		}
		if err := instance.FetchSeed(ctx, t.Dir, src); err != nil {
			return platform.TaskResult{}, err
		}
		st, err := os.Stat(filepath.Join(t.Dir, "dump.rdb"))
		if err != nil {
			return platform.TaskResult{}, err
		}
		return platform.TaskResult{Bytes: st.Size(), CRC64: t.Seed.CRC64}, nil
	case platform.TaskCountKeys:
		f, err := os.Open(filepath.Join(t.Dir, "dump.rdb"))
		if err != nil {
			return platform.TaskResult{}, err
		}
		defer f.Close()
		res, err := backup.VerifyReader(f)
		if err != nil {
			return platform.TaskResult{}, fmt.Errorf("%w: %w", platform.ErrRefuted, err)
		}
		return platform.TaskResult{Bytes: res.Bytes, CRC64: res.CRC64, Keys: res.Keys}, nil
	case platform.TaskSnapshot:
		return instance.Snapshot(ctx, t.Snapshot, func(n int64) {
			if progress != nil {
				progress(platform.TaskProgress{Bytes: n})
			}
		})
	}
	return platform.TaskResult{}, fmt.Errorf("task %q: unknown kind", t.Kind)
}

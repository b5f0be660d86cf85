package platformtest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Harness is what the contract needs to drive one platform.
type Harness struct {
	// New returns a platform over fresh, empty state with room for at
	// least 8 instances, whose boot decisions ask asker.
	New func(t *testing.T, asker *Asker) platform.Platform
	// Restart returns a new platform over p's state, as a manager that
	// restarted sees it.
	Restart func(t *testing.T, p platform.Platform) platform.Platform
	// Kill crashes a running instance out of band (SIGKILL, a container
	// killed), as the platform would see it happen.
	Kill func(t *testing.T, p platform.Platform, in platform.Instance)
	// Ready, if set, checks that a running instance really serves (PING).
	Ready func(t *testing.T, in platform.Instance, password string)

	// RestartsInstances is set for a platform that starts a dead instance
	// again by itself (Kubernetes: the kubelet, the StatefulSet): after a
	// Kill the instance may be listed running again, and Ensure may adopt
	// it; Boots, not the details, then tells that it booted again.
	RestartsInstances bool
	// NoSentinels makes the boot plans name no Sentinel. A platform whose
	// instances ask the Sentinels of the plan themselves (in the pod)
	// cannot be given the contract's Asker; an instance that booted before
	// does not boot there without a Sentinel's word unless the plan names
	// none.
	NoSentinels bool
	// Boots, if set, counts the boots of an instance (each runs the boot
	// decision), for a platform that runs the decision where the instance
	// runs (Kubernetes: the pod's entrypoint) rather than through the
	// Asker. It is called after each step the contract checks the count
	// at, so it may count incarnations it saw go.
	Boots func(t *testing.T, p platform.Platform, id platform.ID) int
	// Timeout bounds each case (default 30 s).
	Timeout time.Duration
	// Unsupported names the cases (Run's case names) the platform does
	// not offer yet, with why: they are skipped saying so.
	Unsupported map[string]string
}

// boots is how many times the instance booted, as the harness counts them.
func (h Harness) boots(t *testing.T, p platform.Platform, asker *Asker, s platform.InstanceSpec) int {
	t.Helper()
	if h.Boots != nil {
		return h.Boots(t, p, s.ID)
	}
	return asker.Asked(s.Boot.MasterName)
}

// Password of the instances the contract starts.
const Password = "contract-pw"

// Asker is an instance.Asker that counts the boot questions and answers
// none (no Sentinel knows the shard), so an instance boots as the plan says.
type Asker struct {
	mu        sync.Mutex
	Questions map[string]int // by master name
}

// MasterAddr implements instance.Asker.
func (a *Asker) MasterAddr(ctx context.Context, sentinel, password, masterName string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.Questions == nil {
		a.Questions = map[string]int{}
	}
	a.Questions[masterName]++
	return "", errors.New("ERR No such master with that name")
}

// Asked returns how many boot questions were asked about a master name.
func (a *Asker) Asked(masterName string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.Questions[masterName]
}

var clusters atomic.Int32

// cluster returns a cluster name of its own for each case.
func cluster() string {
	return fmt.Sprintf("ct%d", clusters.Add(1))
}

func ctxT(t *testing.T, h Harness) context.Context {
	d := h.Timeout
	if d == 0 {
		d = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// redisSpec is a redis-server spec that boots as master (it is its own
// planned master, and no Sentinel answers); its boot questions are about
// the master name <cluster>-<name>.
func redisSpec(h Harness, id platform.ID, ep platform.Endpoint) platform.InstanceSpec {
	sentinels := []string{"sentinel.invalid:26379"}
	if h.NoSentinels {
		sentinels = nil
	}
	return platform.InstanceSpec{ID: id, Kind: platform.KindRedis, Endpoint: ep,
		Redis: &spec.RedisConfig{Password: Password,
			Spec: api.ClusterSpec{Persistence: "none", MaxmemoryPolicy: "noeviction", Maxmemory: "0"}},
		Boot: &platform.BootPlan{MasterName: id.Cluster + "-" + id.Name, PlannedMaster: ep.String(),
			Sentinels: sentinels, SentinelPassword: "x"},
	}
}

// redisID names a redis-server as the manager does on every platform:
// <cluster>-<shard>-<ordinal> (a Kubernetes StatefulSet's pod name).
func redisID(cl string, shard, ordinal int) platform.ID {
	return platform.ID{Cluster: cl, Name: spec.InstanceName(cl, shard, ordinal)}
}

// reserve reserves endpoints for redis-servers, ordinal 0 of each shard
// given.
func reserve(ctx context.Context, t *testing.T, h Harness, p platform.Platform, cl string, shards ...int) []platform.InstanceSpec {
	t.Helper()
	var want []platform.Want
	for _, shard := range shards {
		want = append(want, platform.Want{ID: redisID(cl, shard, 0), Kind: platform.KindRedis})
	}
	eps, err := p.Reserve(ctx, want, nil)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	var out []platform.InstanceSpec
	for _, w := range want {
		out = append(out, redisSpec(h, w.ID, eps[w.ID]))
	}
	return out
}

func find(ctx context.Context, t *testing.T, p platform.Platform, id platform.ID) (platform.Instance, bool) {
	t.Helper()
	l, err := p.List(ctx, id.Cluster)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, in := range l {
		if in.ID == id {
			return in, true
		}
	}
	return platform.Instance{}, false
}

// waitDeath waits for the death event of id on events.
func waitDeath(t *testing.T, events <-chan platform.InstanceEvent, id platform.ID, pid int) platform.InstanceEvent {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Type == platform.EventExited && ev.ID == id && ev.Details.Pid == pid {
				return ev
			}
		case <-timeout:
			t.Fatalf("no death event for %s within 10s", id)
		}
	}
}

// Run runs every case of the contract against the harness's platform.
func Run(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"ensure adopts, recover re-attaches, deaths are certain, remove", lifecycle},
		{"reserve gives distinct endpoints beside the taken ones", reserveDistinct},
		{"remove and recover of what is absent", absent},
		{"seed fetches and checks its source, refused while running", seedRunning},
		{"a spec without configuration starts nothing", noConfig},
		{"tasks fetch and count keys, saying what was wrong", tasks},
		{"removing one instance leaves the others", removeOne},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if why, ok := h.Unsupported[tc.name]; ok {
				t.Skipf("not offered by this platform yet: %s", why)
			}
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

func lifecycle(t *testing.T, h Harness) {
	ctx := ctxT(t, h)
	asker := &Asker{}
	p := h.New(t, asker)
	s := reserve(ctx, t, h, p, cluster(), 0)[0]

	in, err := p.Ensure(ctx, s)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if !in.Running || in.Adopted || in.ID != s.ID || in.Kind != platform.KindRedis || in.Endpoint != s.Endpoint || len(in.Handle) == 0 {
		t.Fatalf("Ensure = %+v, want %s running, started, with a handle", in, s.ID)
	}
	if d := p.Describe(in.Handle); d == (platform.Details{}) || d != in.Details {
		t.Errorf("Describe(handle) = %+v, Details %+v: want the same, not empty", d, in.Details)
	}
	if n := h.boots(t, p, asker, s); n != 1 {
		t.Errorf("boot decision asked %d times, want once (one Sentinel, one boot)", n)
	}
	if h.Ready != nil {
		h.Ready(t, in, Password)
	}

	again, err := p.Ensure(ctx, s)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if !again.Adopted || !again.Running || string(again.Handle) != string(in.Handle) {
		t.Fatalf("second Ensure = %+v, want the running instance adopted with handle %s", again, in.Handle)
	}
	if n := h.boots(t, p, asker, s); n != 1 {
		t.Errorf("boot decision ran for an adopted instance (%d questions)", n)
	}

	// A restarted manager re-attaches by identity and handle, and sees
	// the instance's death, certain.
	p2 := h.Restart(t, p)
	events, err := p2.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := p2.Recover(ctx, s.ID, in.Handle)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if !rec.Running || !rec.Adopted || rec.Details != in.Details || rec.Endpoint != s.Endpoint {
		t.Fatalf("Recover = %+v, want %+v running and adopted", rec, in)
	}
	if l, ok := find(ctx, t, p2, s.ID); !ok || !l.Running || l.Endpoint != s.Endpoint || l.Kind != platform.KindRedis {
		t.Fatalf("List after restart: %+v (found %v)", l, ok)
	}
	h.Kill(t, p2, rec)
	ev := waitDeath(t, events, s.ID, in.Details.Pid)
	if !ev.Certain || ev.At.IsZero() {
		t.Errorf("death event = %+v, want certain, with a time", ev)
	}
	if !h.RestartsInstances {
		if l, ok := find(ctx, t, p2, s.ID); !ok || l.Running {
			t.Fatalf("List after the crash: %+v (found %v), want listed, not running", l, ok)
		}
		if rec, err := p2.Recover(ctx, s.ID, in.Handle); err != nil || rec.Running {
			t.Fatalf("Recover of a dead instance = %+v, %v", rec, err)
		}
	} else if _, ok := find(ctx, t, p2, s.ID); !ok {
		t.Fatalf("not listed after the crash, on a platform that starts it again")
	}

	// Ensure boots it again, deciding its role again (or, where the
	// platform started it again by itself, finds it booted again).
	re, err := p2.Ensure(ctx, s)
	if err != nil {
		t.Fatalf("Ensure after the crash: %v", err)
	}
	if !re.Running || (!h.RestartsInstances && (re.Adopted || re.Details == in.Details)) {
		t.Fatalf("Ensure after the crash = %+v, want a new boot", re)
	}
	if n := h.boots(t, p2, asker, s); n != 2 {
		t.Errorf("boot decision asked %d times after two boots, want 2", n)
	}
	if h.Ready != nil {
		h.Ready(t, re, Password)
	}

	if err := p2.Remove(ctx, s.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if l, ok := find(ctx, t, p2, s.ID); ok {
		t.Fatalf("listed after Remove: %+v", l)
	}
	if err := p2.Remove(ctx, s.ID); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}

func reserveDistinct(t *testing.T, h Harness) {
	ctx := ctxT(t, h)
	p := h.New(t, &Asker{})
	cl := cluster()
	all := p.Capacity(nil)
	if all.Free < 8 || all.Total < all.Free || all.Unit == "" || all.Limit == "" {
		t.Fatalf("Capacity(nil) = %+v, want room for 8 and a description", all)
	}
	want := []platform.Want{
		{ID: platform.ID{Cluster: cl, Name: spec.SentinelInstanceName(cl, 0)}, Kind: platform.KindSentinel},
		{ID: redisID(cl, 0, 0), Kind: platform.KindRedis},
		{ID: redisID(cl, 0, 1), Kind: platform.KindRedis},
	}
	first, err := p.Reserve(ctx, want, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[platform.Endpoint]platform.ID{}
	var taken []platform.Endpoint
	for _, w := range want {
		e, ok := first[w.ID]
		if !ok || e.Host == "" || e.Port <= 0 {
			t.Fatalf("Reserve gave %s %+v", w.ID, e)
		}
		if other, dup := seen[e]; dup {
			t.Errorf("%s and %s both got %s", w.ID, other, e)
		}
		seen[e] = w.ID
		taken = append(taken, e)
	}
	if c := p.Capacity(taken); c.Free != all.Free-len(taken) {
		t.Errorf("Capacity with %d taken = %+v, want %d free", len(taken), c, all.Free-len(taken))
	}
	// Other instances, beside the taken endpoints.
	more := []platform.Want{
		{ID: redisID(cl+"x", 0, 0), Kind: platform.KindRedis},
		{ID: redisID(cl, 0, 2), Kind: platform.KindRedis},
	}
	second, err := p.Reserve(ctx, more, taken)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range more {
		e := second[w.ID]
		if other, dup := seen[e]; dup || e.Port <= 0 {
			t.Errorf("%s got %s, already %s's", w.ID, e, other)
		}
		seen[e] = w.ID
	}
	// More than fits: ErrNoCapacity.
	var tooMany []platform.Want
	free := p.Capacity(taken).Free
	for i := 0; i <= free; i++ {
		tooMany = append(tooMany, platform.Want{ID: redisID(cl+"y", 0, i), Kind: platform.KindRedis})
	}
	if _, err := p.Reserve(ctx, tooMany, taken); !errors.Is(err, platform.ErrNoCapacity) {
		t.Errorf("Reserve of %d beside %d taken: %v, want ErrNoCapacity", len(tooMany), len(taken), err)
	}
}

func absent(t *testing.T, h Harness) {
	ctx := ctxT(t, h)
	p := h.New(t, &Asker{})
	id := redisID(cluster(), 0, 0)
	if err := p.Remove(ctx, id); err != nil {
		t.Errorf("Remove of an absent instance: %v", err)
	}
	if l, err := p.List(ctx, id.Cluster); err != nil || len(l) != 0 {
		t.Errorf("List of an unknown cluster = %+v, %v", l, err)
	}
	if in, err := p.Recover(ctx, id, nil); err != nil || in.Running || in.Adopted {
		t.Errorf("Recover of an absent instance = %+v, %v", in, err)
	}
	if d := p.Describe(nil); d != (platform.Details{}) {
		t.Errorf("Describe(nil) = %+v", d)
	}
}

// emptyRDB is a complete RDB with no keys: header, EOF opcode and the
// CRC-64/Jones (reflected, init 0) of both, little-endian.
func emptyRDB() []byte {
	b := append([]byte("REDIS0009"), 0xff)
	var crc uint64
	for _, c := range b {
		crc ^= uint64(c)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ 0x95ac9329ac4bc9b5
			} else {
				crc >>= 1
			}
		}
	}
	return binary.LittleEndian.AppendUint64(b, crc)
}

func seedRunning(t *testing.T, h Harness) {
	ctx := ctxT(t, h)
	p := h.New(t, &Asker{})
	specs := reserve(ctx, t, h, p, cluster(), 0, 1)
	if _, err := p.Ensure(ctx, specs[0]); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	target := (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
	rdb := emptyRDB()
	corrupt := append([]byte(nil), rdb...)
	corrupt[len(corrupt)-1] ^= 1
	for key, b := range map[string][]byte{"good.rdb": rdb, "corrupt.rdb": corrupt} {
		if err := os.WriteFile(filepath.Join(dir, key), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	src := func(key string, size int64) platform.SeedSource {
		return platform.SeedSource{TargetURL: target, Key: key, Size: size}
	}
	if err := p.Seed(ctx, specs[0].ID, src("good.rdb", int64(len(rdb)))); !errors.Is(err, platform.ErrRunning) {
		t.Errorf("Seed of a running instance: %v, want ErrRunning", err)
	}
	if err := p.Seed(ctx, specs[1].ID, src("missing.rdb", 0)); !errors.Is(err, backup.ErrNotFound) || !strings.Contains(err.Error(), specs[1].ID.Name) {
		t.Errorf("Seed from a missing object: %v, want ErrNotFound naming %s", err, specs[1].ID.Name)
	}
	if err := p.Seed(ctx, specs[1].ID, src("corrupt.rdb", 0)); !errors.Is(err, backup.ErrCorrupt) {
		t.Errorf("Seed from a corrupt object: %v, want ErrCorrupt", err)
	}
	if err := p.Seed(ctx, specs[1].ID, src("good.rdb", int64(len(rdb))+1)); !errors.Is(err, backup.ErrCorrupt) {
		t.Errorf("Seed from an object of another size than recorded: %v, want ErrCorrupt", err)
	}
	var seen int64
	good := src("good.rdb", int64(len(rdb)))
	good.Progress = func(n int64) { seen = n }
	if err := p.Seed(ctx, specs[1].ID, good); err != nil {
		t.Fatalf("Seed of an instance that never ran: %v", err)
	}
	if seen != int64(len(rdb)) {
		t.Errorf("progress ended at %d bytes, want %d", seen, len(rdb))
	}
	if l, ok := find(ctx, t, p, specs[1].ID); ok && l.Running {
		t.Errorf("a seeded instance runs before Ensure: %+v", l)
	}
	in, err := p.Ensure(ctx, specs[1])
	if err != nil || !in.Running {
		t.Fatalf("Ensure of the seeded instance = %+v, %v", in, err)
	}
	if h.Ready != nil {
		h.Ready(t, in, Password)
	}
}

func tasks(t *testing.T, h Harness) {
	ctx := ctxT(t, h)
	p := h.New(t, &Asker{})
	objects := t.TempDir()
	target := (&url.URL{Scheme: "file", Path: filepath.ToSlash(objects)}).String()
	rdb := emptyRDB()
	corrupt := append([]byte(nil), rdb...)
	corrupt[len(corrupt)-1] ^= 1
	for key, b := range map[string][]byte{"good.rdb": rdb, "corrupt.rdb": corrupt} {
		if err := os.WriteFile(filepath.Join(objects, key), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(key string, size int64) (string, platform.TaskResult, error) {
		dir := t.TempDir()
		res, err := p.RunTask(ctx, platform.Task{Kind: platform.TaskFetch, Dir: dir,
			Seed: platform.SeedSource{TargetURL: target, Key: key, Size: size}}, nil)
		return dir, res, err
	}
	dir, res, err := fetch("good.rdb", int64(len(rdb)))
	if err != nil || res.Bytes != int64(len(rdb)) {
		t.Fatalf("fetch task = %+v, %v; want %d bytes", res, err, len(rdb))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "dump.rdb")); err != nil || string(b) != string(rdb) {
		t.Errorf("fetched dump.rdb = %q, %v", b, err)
	}
	res, err = p.RunTask(ctx, platform.Task{Kind: platform.TaskCountKeys, Dir: dir}, nil)
	if err != nil || res.Keys != 0 {
		t.Errorf("count-keys of an empty RDB = %+v, %v", res, err)
	}
	if _, _, err := fetch("corrupt.rdb", 0); !errors.Is(err, backup.ErrCorrupt) {
		t.Errorf("fetch of a corrupt object: %v, want ErrCorrupt", err)
	}
	if _, _, err := fetch("missing.rdb", 0); !errors.Is(err, backup.ErrNotFound) {
		t.Errorf("fetch of a missing object: %v, want ErrNotFound", err)
	}
	junk := t.TempDir()
	if err := os.WriteFile(filepath.Join(junk, "dump.rdb"), []byte("not an rdb"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RunTask(ctx, platform.Task{Kind: platform.TaskCountKeys, Dir: junk}, nil); !errors.Is(err, platform.ErrRefuted) {
		t.Errorf("count-keys of a file that is no RDB: %v, want ErrRefuted", err)
	}
}

func noConfig(t *testing.T, h Harness) {
	ctx := ctxT(t, h)
	asker := &Asker{}
	p := h.New(t, asker)
	s := reserve(ctx, t, h, p, cluster(), 0)[0]
	s.Redis = nil
	if _, err := p.Ensure(ctx, s); err == nil || !strings.Contains(err.Error(), s.ID.Name) {
		t.Fatalf("Ensure without configuration: %v, want an error naming %s", err, s.ID.Name)
	}
	if l, ok := find(ctx, t, p, s.ID); ok && l.Running {
		t.Errorf("runs without configuration: %+v", l)
	}
}

func removeOne(t *testing.T, h Harness) {
	ctx := ctxT(t, h)
	p := h.New(t, &Asker{})
	// Two shards: a platform that removes only a shard's highest ordinal
	// (a StatefulSet) removes either.
	specs := reserve(ctx, t, h, p, cluster(), 0, 1)
	var ins []platform.Instance
	for _, s := range specs {
		in, err := p.Ensure(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		ins = append(ins, in)
	}
	if ins[0].Details == ins[1].Details {
		t.Errorf("two instances with the same details: %+v", ins[0].Details)
	}
	if err := p.Remove(ctx, specs[0].ID); err != nil {
		t.Fatal(err)
	}
	l, err := p.List(ctx, specs[0].ID.Cluster)
	if err != nil || len(l) != 1 || l[0].ID != specs[1].ID || !l[0].Running {
		t.Fatalf("List after removing one = %+v, %v", l, err)
	}
	if h.Ready != nil {
		h.Ready(t, l[0], Password)
	}
}

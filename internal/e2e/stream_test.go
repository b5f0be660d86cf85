package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// sseEvent is one server-sent event as a client read it.
type sseEvent struct {
	Type string
	Data string
	At   time.Time // when the client read it
}

// sseClient reads GET /api/v1/stream of a manager into a list anyone can
// wait on.
type sseClient struct {
	t      *testing.T
	name   string
	mu     sync.Mutex
	events []sseEvent
	retry  string
	closed bool
}

func openStream(t *testing.T, m *testenv.Manager, name, query string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.URL+"/api/v1/stream"+query, nil)
	req.Header.Set("Authorization", "Bearer "+m.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("%s: open stream: %v", name, err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" ||
		resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Accel-Buffering") != "no" {
		cancel()
		t.Fatalf("%s: stream answered %d with headers %v", name, resp.StatusCode, resp.Header)
	}
	c := &sseClient{t: t, name: name}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	go func() {
		defer close(done)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		var typ, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if typ != "" || data != "" {
					c.mu.Lock()
					c.events = append(c.events, sseEvent{typ, data, time.Now()})
					c.mu.Unlock()
				}
				typ, data = "", ""
			case strings.HasPrefix(line, "retry: "):
				c.mu.Lock()
				c.retry = strings.TrimPrefix(line, "retry: ")
				c.mu.Unlock()
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
	}()
	return c
}

// wait returns the first event from index from on for which ok holds,
// and its index.
func (c *sseClient) wait(from int, timeout time.Duration, what string, ok func(sseEvent) bool) (sseEvent, int) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	i := from // each event is offered to ok once
	for {
		c.mu.Lock()
		for ; i < len(c.events); i++ {
			if ok(c.events[i]) {
				e := c.events[i]
				c.mu.Unlock()
				return e, i
			}
		}
		closed, n := c.closed, len(c.events)
		c.mu.Unlock()
		if closed || time.Now().After(deadline) {
			c.mu.Lock()
			for _, e := range c.events {
				c.t.Logf("%s read: %s %.300s", c.name, e.Type, e.Data)
			}
			c.mu.Unlock()
			c.t.Fatalf("%s: no %s within %s (closed %v, %d events read)", c.name, what, timeout, closed, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *sseClient) all() []sseEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]sseEvent(nil), c.events...)
}

func clusterOf(t *testing.T, e sseEvent) api.Cluster {
	var cl api.Cluster
	if err := json.Unmarshal([]byte(e.Data), &cl); err != nil {
		t.Fatalf("cluster event %q: %v", e.Data, err)
	}
	return cl
}

func jobOf(t *testing.T, e sseEvent) api.Job {
	var j api.Job
	if err := json.Unmarshal([]byte(e.Data), &j); err != nil {
		t.Fatalf("job event %q: %v", e.Data, err)
	}
	return j
}

// followCreateAndFailover creates a cluster through lead while every
// stream watches: each must show the create job's progress to its end, the
// cluster up to Ready, and, after a kill -9 of the master, the failover
// event within 3 s.
func followCreateAndFailover(t *testing.T, lead *testenv.Manager, name string, streams ...*sseClient) {
	ctx := context.Background()
	res, err := lead.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: name, Shards: intp(4), Replicas: intp(2), Sentinels: intp(3)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range streams {
		// Job events: the create job with rising progress and steps, to
		// success.
		var progress []float64
		stepsDone := map[int]bool{}
		s.wait(0, 30*time.Second, "create job to succeed", func(e sseEvent) bool {
			if e.Type != "job" {
				return false
			}
			j := jobOf(t, e)
			if j.ID != res.Job.ID {
				return false
			}
			progress = append(progress, j.Progress)
			n := 0
			for _, st := range j.Steps {
				if st.State == api.StateSucceeded {
					n++
				}
			}
			stepsDone[n] = true
			return j.State == api.StateSucceeded
		})
		for i := 1; i < len(progress); i++ {
			if progress[i] < progress[i-1] {
				t.Fatalf("%s: job progress went back: %v", s.name, progress)
			}
		}
		// A 4×2×3 create takes about a second here; the unfinished jobs
		// are read every 100 ms, so the stream shows it on its way.
		midway := false
		for _, p := range progress {
			midway = midway || (p > 0 && p < 1)
		}
		if len(progress) < 2 || len(stepsDone) < 2 || !midway || progress[len(progress)-1] != 1 {
			t.Fatalf("%s: job events show too little progress: progress %v, done-step counts %v", s.name, progress, stepsDone)
		}
		s.wait(0, 15*time.Second, "cluster "+name+" Ready", func(e sseEvent) bool {
			return e.Type == "cluster" && clusterOf(t, e).Name == name && clusterOf(t, e).Status.Phase == api.PhaseReady
		})
		s.wait(0, 5*time.Second, "created event", func(e sseEvent) bool {
			return e.Type == "event" && strings.Contains(e.Data, `"type":"created"`) && strings.Contains(e.Data, `"cluster":"`+name+`"`)
		})
		t.Logf("%s: %d job events, progress %v", s.name, len(progress), progress)
	}
	cl := lead.WaitPhase(ctx, name, api.PhaseReady, 10*time.Second)
	from := make([]int, len(streams))
	for i, s := range streams {
		from[i] = len(s.all())
	}
	killed := time.Now()
	kill9(t, cl.Status.Shards[0].Master.Pid)
	for i, s := range streams {
		e, _ := s.wait(from[i], 10*time.Second, "failover event", func(e sseEvent) bool {
			return e.Type == "event" && strings.Contains(e.Data, `"type":"failover"`) && strings.Contains(e.Data, `"cluster":"`+name+`"`)
		})
		if d := e.At.Sub(killed); d > 3*time.Second {
			t.Errorf("%s: failover event arrived %s after the kill, want within 3 s", s.name, d)
		} else {
			t.Logf("%s: failover event %s after the kill: %s", s.name, d.Round(time.Millisecond), e.Data)
		}
	}
}

// TestStream: the live stream of one manager follows a create to Ready
// with the job's progress and a kill -9 of a master to the failover event;
// the figures' time series fill from the same statuses; a cluster's
// deletion ends with cluster-deleted.
func TestStream(t *testing.T) {
	t.Parallel()
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	all := openStream(t, m, "stream", "")
	ctx := context.Background()
	if _, err := m.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "other", Replicas: intp(0), Sentinels: intp(1)}); err != nil {
		t.Fatal(err)
	}
	one := openStream(t, m, "stream?cluster=other", "?cluster=other")
	m.WaitPhase(ctx, "other", api.PhaseReady, 30*time.Second)
	followCreateAndFailover(t, m, "live", all)
	if all.retry != "2000" {
		t.Fatalf("retry %q, want 2000", all.retry)
	}
	for _, e := range one.all() {
		if strings.Contains(e.Data, `"cluster":"live"`) || strings.Contains(e.Data, `"name":"live"`) {
			t.Fatalf("?cluster=other got an event of live: %s %s", e.Type, e.Data)
		}
	}
	one.wait(0, 5*time.Second, "other's Ready", func(e sseEvent) bool {
		return e.Type == "cluster" && clusterOf(t, e).Status.Phase == api.PhaseReady
	})

	// A new subscriber gets every cluster and the unfinished jobs at once.
	late := openStream(t, m, "late", "")
	seen := map[string]bool{}
	late.wait(0, 2*time.Second, "both clusters at connect", func(e sseEvent) bool {
		if e.Type == "cluster" {
			seen[clusterOf(t, e).Name] = true
		}
		return seen["live"] && seen["other"]
	})

	// Time series: the figures of INFO, every 10 s.
	cl := m.WaitPhase(ctx, "live", api.PhaseReady, 30*time.Second)
	creds, _ := m.Client.Credentials(ctx, "live")
	rc := redis.NewClient(&redis.Options{Addr: cl.Status.Shards[0].Master.Address, Password: creds.Password})
	defer rc.Close()
	master := cl.Status.Shards[0].Master.Name
	if cl.Status.Shards[0].Master.ConnectedClients < 1 || cl.Status.Shards[0].Master.UsedCPUSeconds <= 0 {
		t.Fatalf("status lacks INFO figures: %+v", *cl.Status.Shards[0].Master)
	}
	deadline := time.Now().Add(40 * time.Second)
	var mt api.Metrics
	for {
		for i := 0; i < 200; i++ {
			rc.Set(ctx, "k", i, 0)
			rc.Get(ctx, "k")
			rc.Get(ctx, "missing")
		}
		var err error
		mt, err = m.Client.Metrics(ctx, "live", "1h", master)
		if err != nil {
			t.Fatal(err)
		}
		if len(mt.Instances) == 1 && lastValue(mt.Instances[0].Series.HitRatio) != nil && lastValue(mt.Instances[0].Series.CPUPercent) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hit ratio and CPU in the series within 40 s: %+v", mt.Instances)
		}
		time.Sleep(time.Second)
	}
	s := mt.Instances[0].Series
	if len(mt.Times) != 360 || mt.StepMs != 10000 || len(s.OpsPerSec) != 360 || len(s.UsedMemoryBytes) != 360 {
		t.Fatalf("1h: %d times, step %d, %d ops points", len(mt.Times), mt.StepMs, len(s.OpsPerSec))
	}
	if h := *lastValue(s.HitRatio); h < 0.3 || h > 0.7 {
		t.Errorf("hit ratio %v, want about 0.5 (one hit, one miss per round)", h)
	}
	if v := *lastValue(s.UsedMemoryBytes); v < 100_000 {
		t.Errorf("used memory %v", v)
	}
	if v := *lastValue(s.Clients); v < 1 {
		t.Errorf("clients %v", v)
	}
	m24, err := m.Client.Metrics(ctx, "live", "24h", "")
	if err != nil || len(m24.Times) != 720 || m24.StepMs != 120000 || len(m24.Instances) < 1 {
		t.Fatalf("24h: %v, %d times, step %d", err, len(m24.Times), m24.StepMs)
	}
	if _, err := m.Client.Metrics(ctx, "live", "2h", ""); !isStatus(err, 400) || !strings.Contains(err.Error(), "range") {
		t.Fatalf("range 2h: %v, want 400 on field range", err)
	}
	if _, err := m.Client.Metrics(ctx, "nope", "1h", ""); !isStatus(err, 404) {
		t.Fatalf("unknown cluster: %v, want 404", err)
	}

	// Deletion.
	job, err := m.Client.DeleteCluster(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	m.WaitJob(ctx, job.ID)
	all.wait(0, 5*time.Second, "cluster-deleted", func(e sseEvent) bool {
		return e.Type == "cluster-deleted" && e.Data == `{"name":"other"}`
	})
}

func lastValue(s []*float64) *float64 {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != nil {
			return s[i]
		}
	}
	return nil
}

// TestStreamStandby: a standby manager (no control loop, no jobs) streams
// the same as the leader, since both follow the store.
func TestStreamStandby(t *testing.T) {
	t.Parallel()
	lead, standby, _ := leaderAndStandby(t)
	followCreateAndFailover(t, lead, "ha", openStream(t, standby, "standby", ""), openStream(t, lead, "leader", ""))
}

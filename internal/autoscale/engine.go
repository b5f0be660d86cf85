package autoscale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/topology"
)

// Store is what the engine needs of the store.
type Store interface {
	ListAutoscalePolicies(ctx context.Context) (map[string]api.AutoscalePolicy, error)
	GetAutoscaleState(ctx context.Context, cluster string) (api.AutoscaleState, error)
	PutAutoscaleState(ctx context.Context, cluster string, st api.AutoscaleState) error
	ListEventsOfType(ctx context.Context, cluster, typ string, limit int) ([]api.Event, error)
	AddEvent(ctx context.Context, e api.Event) error
}

// Scaler changes a cluster's spec with a scale job: the service's
// UpdateCluster, the very path of PATCH /api/v1/clusters/{name}, so an
// autoscaling change is admitted, stored and resumed like a person's.
type Scaler interface {
	UpdateCluster(ctx context.Context, name string, req api.UpdateClusterRequest) (api.Cluster, api.Job, error)
}

// ScalerFunc is a Scaler as a function.
type ScalerFunc func(ctx context.Context, name string, req api.UpdateClusterRequest) (api.Cluster, api.Job, error)

// UpdateCluster implements Scaler.
func (f ScalerFunc) UpdateCluster(ctx context.Context, name string, req api.UpdateClusterRequest) (api.Cluster, api.Job, error) {
	return f(ctx, name, req)
}

// Engine runs the policies on the leader after each observe round.
type Engine struct {
	store  Store
	scaler Scaler
	room   platform.ReplicaRoom // nil: the platform cannot tell
	log    *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	samples map[string]Samples // by cluster: the last round's counters
}

// NewEngine returns an engine; room may be nil.
func NewEngine(st Store, scaler Scaler, room platform.ReplicaRoom, log *slog.Logger) *Engine {
	return &Engine{store: st, scaler: scaler, room: room, log: log, now: func() time.Time { return time.Now().UTC() },
		samples: map[string]Samples{}}
}

// Cluster is one cluster as the leader just observed it.
type Cluster struct {
	Name     string
	Spec     api.ClusterSpec
	Phase    string
	Obs      topology.Observation
	Observed bool
	// JobID and JobKind name the unfinished job that changes the cluster
	// ("" for none).
	JobID, JobKind string
}

// Evaluate decides for every cluster with a policy. ctx carries the
// leader's fence: a deposed leader writes no state.
func (e *Engine) Evaluate(ctx context.Context, clusters []Cluster) error {
	policies, err := e.store.ListAutoscalePolicies(ctx)
	if err != nil {
		return err
	}
	var errs []error
	seen := map[string]bool{}
	for _, cl := range clusters {
		p, ok := policies[cl.Name]
		if !ok {
			continue
		}
		seen[cl.Name] = true
		if err := e.cluster(ctx, cl, p); err != nil {
			errs = append(errs, fmt.Errorf("autoscale cluster %q: %w", cl.Name, err))
		}
	}
	e.mu.Lock()
	for name := range e.samples {
		if !seen[name] {
			delete(e.samples, name)
		}
	}
	e.mu.Unlock()
	return errors.Join(errs...)
}

func (e *Engine) cluster(ctx context.Context, cl Cluster, p api.AutoscalePolicy) error {
	switch cl.Phase {
	case api.PhaseCreating, api.PhaseDeleting, "":
		return nil
	}
	if !cl.Observed {
		return nil
	}
	now := e.now()
	metric, target := api.MetricOps, 0.0
	if p.Replicas != nil {
		metric, target = p.Replicas.Metric, p.Replicas.Target
	}
	e.mu.Lock()
	prev := e.samples[cl.Name]
	e.mu.Unlock()
	readings, next := Read(cl.Spec, metric, cl.Obs, prev)
	readings.Target = target
	st, err := e.store.GetAutoscaleState(ctx, cl.Name)
	if err != nil {
		return err
	}
	in := Input{Now: now, Policy: p, Spec: cl.Spec, Readings: readings, State: st}
	in.Guards = ObservedGuards(cl.Spec, cl.Name, cl.Obs)
	failovers, err := e.store.ListEventsOfType(ctx, cl.Name, "failover", 1)
	if err != nil {
		return err
	}
	if len(failovers) > 0 {
		in.Guards = append(in.Guards, FailoverWindow(&failovers[0], now, ms(p.FailoverWindowMs))...)
	}
	ownJob := cl.JobID != "" && cl.JobID == st.LastJob
	if cl.JobID != "" && !ownJob {
		in.Guards = append(in.Guards, Guard{GuardJob, fmt.Sprintf("job %s (%s) is changing the cluster", cl.JobID, cl.JobKind)})
	}
	backlog := e.replicaGuards(ctx, cl, readings, prev, &in)
	d, nst := Decide(in)
	e.mu.Lock()
	e.samples[cl.Name] = next
	e.mu.Unlock()
	switch {
	case d.Action == "":
		// A hold at the limit is remembered while the signal comes and
		// goes: at the same limit it is not recorded again.
		if !strings.HasPrefix(st.LastHold, "limit:") {
			nst.LastHold = ""
		}
	case ownJob:
		// The engine's own change is still running: the next decision
		// waits for it without a record every round.
	case d.Hold != nil:
		if d.Hold.Name == GuardBacklog && backlog != "" && !p.DryRun && len(in.Guards) == 0 {
			nst = e.raiseBacklog(ctx, cl, d, backlog, readings, nst)
			break
		}
		key := d.Action + "/" + d.Hold.Name
		if d.Hold.Name == GuardLimit {
			key = fmt.Sprintf("limit:%s/%d", d.Action, d.From)
		}
		if st.LastHold != key {
			e.record(ctx, cl.Name, d, "held", readings, "", d.Hold)
		}
		nst.LastHold = key
	case p.DryRun:
		e.record(ctx, cl.Name, d, "dry-run", readings, "", nil)
		nst = Taken(nst, d, now, "")
	default:
		_, job, err := e.scaler.UpdateCluster(ctx, cl.Name, d.Request())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			g := &Guard{GuardRefused, "the scale was refused: " + err.Error()}
			if errors.Is(err, store.ErrConflict) {
				g.Name = GuardJob
			}
			if key := d.Action + "/" + g.Name; st.LastHold != key {
				e.record(ctx, cl.Name, d, "held", readings, "", g)
				nst.LastHold = key
			}
			break
		}
		e.record(ctx, cl.Name, d, "scaled", readings, job.ID, nil)
		nst = Taken(nst, d, now, job.ID)
	}
	return e.store.PutAutoscaleState(ctx, cl.Name, nst)
}

// replicaGuards adds the guards of a new replica's sync to in: memory for
// the master's fork and the copy (ReplicaRoom), and a backlog that holds
// the writes of the sync. It returns the repl-backlog-size to raise to
// ("" when it is big enough).
func (e *Engine) replicaGuards(ctx context.Context, cl Cluster, r api.AutoscaleReadings, prev Samples, in *Input) string {
	var raise int64
	for _, sr := range r.Shards {
		if sr.Master == "" {
			continue
		}
		var master topology.RedisObs
		for _, ro := range cl.Obs.Redis {
			if ro.In.Name == sr.Master {
				master = ro
			}
		}
		if master.Info == nil {
			continue
		}
		used := master.Info.Int("used_memory")
		cow := max(master.Info.Int("rdb_last_cow_size"), master.Info.Int("current_cow_size"))
		if e.room != nil {
			need, have, bound, err := e.room.ReplicaRoom(ctx, platform.ID{Cluster: cl.Name, Name: sr.Master}, used, cow)
			if err != nil {
				e.log.Warn("read the memory a new replica's sync has", "cluster", cl.Name, "master", sr.Master, "err", err)
			} else {
				in.ReplicaGuards = append(in.ReplicaGuards, MemoryRoom(sr.Master, need, have, bound)...)
			}
		}
		rate, ok := WriteRate(sr.Master, cl.Obs, prev)
		if !ok {
			// Without a write rate the backlog cannot be checked: a new
			// replica waits a round rather than risk a looping sync.
			in.ReplicaGuards = append(in.ReplicaGuards, Guard{GuardUnknown, fmt.Sprintf(
				"no previous replication offset of %s (the first round of the policy or of this leader): the write rate a new replica's sync must fit in the backlog is read next round", sr.Master)})
			continue
		}
		sync, need := Backlog(used, master.Info.Int("rdb_last_bgsave_time_sec"), rate)
		if size := master.Info.Int("repl_backlog_size"); size > 0 && size < need {
			in.ReplicaGuards = append(in.ReplicaGuards, Guard{GuardBacklog, fmt.Sprintf(
				"repl-backlog-size of %s is %d bytes; a new replica's sync takes about %s at %.0f bytes/s of writes, which needs %d: the sync would start over and over",
				sr.Master, size, sync.Round(100*time.Millisecond), rate, need)})
			raise = max(raise, need)
		}
	}
	if raise == 0 {
		return ""
	}
	return FormatSize(roundMB(raise, raise+1<<20))
}

// raiseBacklog starts the config change that makes a new replica's sync
// fit in the backlog; the replica is added in a later round.
func (e *Engine) raiseBacklog(ctx context.Context, cl Cluster, d Decision, size string, r api.AutoscaleReadings, st api.AutoscaleState) api.AutoscaleState {
	config := maps.Clone(cl.Spec.Config)
	if config == nil {
		config = map[string]string{}
	}
	config["repl-backlog-size"] = size
	_, job, err := e.scaler.UpdateCluster(ctx, cl.Name, api.UpdateClusterRequest{Config: config})
	if err != nil {
		if key := d.Action + "/" + GuardBacklog; st.LastHold != key {
			e.record(ctx, cl.Name, d, "held", r, "", &Guard{GuardBacklog, d.Hold.Message + "; raising repl-backlog-size to " + size + " was refused: " + err.Error()})
			st.LastHold = key
		}
		return st
	}
	g := *d.Hold
	g.Message += "; raising repl-backlog-size to " + size + " first"
	e.record(ctx, cl.Name, d, "held", r, job.ID, &g)
	st.LastJob, st.LastHold = job.ID, d.Action+"/"+GuardBacklog
	return st
}

// record writes the decision as an autoscale event with its readings.
func (e *Engine) record(ctx context.Context, cluster string, d Decision, outcome string, r api.AutoscaleReadings, job string, g *Guard) {
	details := map[string]any{"action": d.Action, "outcome": outcome, "reason": d.Reason, "from": d.From, "to": d.To, "readings": r}
	msg := fmt.Sprintf("autoscale %s %s: %s", d.Action, describe(d), d.Reason)
	switch outcome {
	case "held":
		details["guard"], details["guardMessage"] = g.Name, g.Message
		msg = fmt.Sprintf("autoscale %s %s held back (%s): %s; %s", d.Action, describe(d), g.Name, g.Message, d.Reason)
	case "dry-run":
		msg = "dry run: " + msg
	}
	if job != "" {
		details["job"] = job
	}
	ev := api.Event{ID: jobspec.NewID("e"), Cluster: cluster, Type: api.EventAutoscale, At: e.now(), Message: msg, Details: details}
	if err := e.store.AddEvent(context.WithoutCancel(ctx), ev); err != nil {
		e.log.Error("record autoscale event", "cluster", cluster, "err", err)
	}
	e.log.Info("autoscale", "cluster", cluster, "action", d.Action, "outcome", outcome, "job", job, "reason", d.Reason)
}

func describe(d Decision) string {
	switch d.Action {
	case ScaleOut, ScaleIn:
		return fmt.Sprintf("%d → %d replicas per shard", d.From, d.To)
	default:
		return fmt.Sprintf("maxmemory %s → %s", FormatSize(d.From), FormatSize(d.To))
	}
}

package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/redisclient"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Config holds the service's settings.
type Config struct {
	// BackupTarget is the file:// or s3:// URL new backups go to.
	BackupTarget string
	// ImportRoots are target URLs, besides BackupTarget, that imports may
	// read under (serve --import-root).
	ImportRoots []string
}

// Capacity is what admission asks of the platform: how much room is left
// once taken is counted (platform.Platform has it).
type Capacity interface {
	Capacity(taken []platform.Endpoint) platform.Capacity
}

// Live is what a spec change asks of the running cluster (the controller
// implements it): a change must not race a failover, and without force it
// must not drop keys or set maxmemory under what a master uses.
type Live interface {
	// FailingOver names a shard of the cluster that is failing over
	// (topology.FailingOver), from a fresh observation.
	FailingOver(ctx context.Context, cl store.Cluster) (shard int, ok bool, err error)
	// MasterInfo reads the INFO sections of a shard's current master;
	// master is "" (and err nil) when no master is known.
	MasterInfo(ctx context.Context, cl store.Cluster, shard int, sections ...string) (master string, info redisclient.Info, err error)
}

// Runner is told when a job was stored, so it starts it now rather than at
// its next poll (the controller's job runner; on a standby nobody listens).
type Runner interface {
	Kick()
}

// Service is the API's use cases: it validates a request, stores its
// intent (a cluster, a job, a schedule) and wakes the job runner. It never
// changes a running instance itself.
type Service struct {
	cfg      Config
	store    store.Store
	platform Capacity
	live     Live
	runner   Runner
	log      *slog.Logger
}

// New assembles the service.
func New(cfg Config, st store.Store, capacity Capacity, live Live, runner Runner, log *slog.Logger) *Service {
	return &Service{cfg: cfg, store: st, platform: capacity, live: live, runner: runner, log: log}
}

// CreateCluster validates a create request, stores the cluster and its
// create job in one transaction and hands the job to the runner.
func (svc *Service) CreateCluster(ctx context.Context, req api.CreateClusterRequest) (api.Cluster, api.Job, error) {
	s, err := spec.FromCreateRequest(req)
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	now := time.Now().UTC().Truncate(time.Microsecond) // what the store keeps
	cl := store.Cluster{
		Name:             req.Name,
		Spec:             s,
		Status:           api.ClusterStatus{Phase: api.PhaseCreating, Shards: []api.ShardStatus{}, Sentinels: []api.SentinelStatus{}},
		Password:         randomSecret(),
		SentinelPassword: randomSecret(),
		CreatedAt:        now,
	}
	job := jobspec.New(api.JobCreate, req.Name, now)
	if err := svc.store.Admit(ctx, &cl, job, svc.admissionCheck(spec.InstanceCount(s))); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Cluster{}, api.Job{}, jobspec.Conflict("cluster %q already exists", req.Name)
		}
		return api.Cluster{}, api.Job{}, err
	}
	svc.runner.Kick()
	return svc.view(cl), job.Job, nil
}

// checkCapacity refuses early a scale that adds need instances the platform
// has no room for, before UpdateCluster asks the live cluster anything (the
// authoritative check is admissionCheck, run by store.Admit in the
// transaction that stores the job; create and restore rely on that alone).
func (svc *Service) checkCapacity(ctx context.Context, need int) error {
	var a store.Admission
	var err error
	if a.Instances, err = svc.store.ListAllInstances(ctx); err != nil {
		return err
	}
	if a.Unfinished, err = svc.store.UnfinishedJobs(ctx); err != nil {
		return err
	}
	cls, err := svc.store.ListClusters(ctx)
	if err != nil {
		return err
	}
	a.Specs = map[string]api.ClusterSpec{}
	for _, cl := range cls {
		a.Specs[cl.Name] = cl.Spec
	}
	return svc.admissionCheck(need)(a)
}

// admissionCheck refuses a job that adds need instances beyond what the
// platform has left once every recorded instance and every instance an
// unfinished job has still to add are counted: concurrent creates and
// scales cannot be accepted past the platform's capacity and fail later.
func (svc *Service) admissionCheck(need int) func(store.Admission) error {
	return func(a store.Admission) error {
		if need <= 0 {
			return nil
		}
		taken := make([]platform.Endpoint, 0, len(a.Instances))
		records := map[string]int{}
		for _, in := range a.Instances {
			taken = append(taken, platform.Endpoint{Host: in.Host, Port: in.Port})
			records[in.Cluster]++
		}
		pending := 0
		for _, j := range a.Unfinished {
			pending += outstanding(j, a.Specs, records)
		}
		cp := svc.platform.Capacity(taken)
		if free := cp.Free - pending; need > free {
			msg := fmt.Sprintf("the cluster needs %d %s (shards × (1 + replicas) + sentinels) but only %d of the %d in %s are free",
				need, cp.Unit, max(free, 0), cp.Total, cp.Limit)
			if pending > 0 {
				msg += fmt.Sprintf(" (%d more are reserved by jobs in progress)", pending)
			}
			return &spec.FieldError{Kind: spec.Unprocessable, Field: "shards", Message: msg}
		}
		return nil
	}
}

// outstanding is how many instances an unfinished job has still to add:
// its target's count minus the records its cluster has. It is pure.
func outstanding(j store.Job, specs map[string]api.ClusterSpec, records map[string]int) int {
	var target api.ClusterSpec
	switch j.Kind {
	case api.JobCreate, api.JobRestore:
		s, ok := specs[j.Cluster]
		if !ok {
			return 0
		}
		target = s
	case api.JobScale:
		var p jobspec.ScaleParams
		if json.Unmarshal(j.Params, &p) != nil {
			return 0
		}
		target = p.To
	default:
		return 0
	}
	return max(0, spec.InstanceCount(target)-records[j.Cluster])
}

// DeleteCluster stores a delete job for the cluster.
func (svc *Service) DeleteCluster(ctx context.Context, name string) (api.Job, error) {
	if _, err := svc.getCluster(ctx, name); err != nil {
		return api.Job{}, err
	}
	job := jobspec.New(api.JobDelete, name, time.Now().UTC())
	if err := svc.createJob(ctx, job); err != nil {
		return api.Job{}, err
	}
	svc.runner.Kick()
	return job.Job, nil
}

// createJob stores a job, explaining a conflict with the job in the way.
func (svc *Service) createJob(ctx context.Context, job store.Job) error {
	err := svc.store.CreateJob(ctx, job)
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	if err := svc.laneConflict(ctx, job); err != nil {
		return err
	}
	return jobspec.Conflict("cluster %q already has a job in progress", job.Cluster)
}

// laneConflict names the unfinished job that holds job's lane, if any.
func (svc *Service) laneConflict(ctx context.Context, job store.Job) error {
	lock := store.JobLock(job.Kind, job.Cluster)
	if jobs, err := svc.store.ListJobs(ctx, job.Cluster); err == nil {
		for _, j := range jobs {
			if !j.Done() && store.JobLock(j.Kind, j.Cluster) == lock {
				return jobspec.Conflict("cluster %q already has a %s job in progress (%s, %s); wait for it to finish", job.Cluster, j.Kind, j.ID, j.State)
			}
		}
	}
	return nil
}

func (svc *Service) getCluster(ctx context.Context, name string) (store.Cluster, error) {
	cl, err := svc.store.GetCluster(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return cl, jobspec.NotFound("cluster %q not found", name)
	}
	return cl, err
}

// GetCluster returns the API view of a cluster.
func (svc *Service) GetCluster(ctx context.Context, name string) (api.Cluster, error) {
	cl, err := svc.getCluster(ctx, name)
	if err != nil {
		return api.Cluster{}, err
	}
	return svc.view(cl), nil
}

// ListClusters returns every cluster.
func (svc *Service) ListClusters(ctx context.Context) ([]api.Cluster, error) {
	cls, err := svc.store.ListClusters(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Cluster, 0, len(cls))
	for _, cl := range cls {
		out = append(out, svc.view(cl))
	}
	return out, nil
}

// Credentials returns a cluster's passwords.
func (svc *Service) Credentials(ctx context.Context, name string) (api.Credentials, error) {
	cl, err := svc.getCluster(ctx, name)
	if err != nil {
		return api.Credentials{}, err
	}
	out := api.Credentials{Password: cl.Password, SentinelPassword: cl.SentinelPassword}
	if cl.Rotation.Old != "" {
		out.PreviousPassword, out.PreviousPasswordValidUntil = cl.Rotation.Old, cl.Rotation.EndsAt
		out.PreviousSentinelPassword = cl.Rotation.OldSentinel
	}
	return out, nil
}

// Events returns a cluster's events, newest first. While the cluster
// exists, only its own: a deleted cluster of the same name keeps its history,
// shown once no cluster has the name.
func (svc *Service) Events(ctx context.Context, name string) ([]api.Event, error) {
	evs, err := svc.store.ListEvents(ctx, name, 1000)
	if err != nil {
		return nil, err
	}
	cl, err := svc.getCluster(ctx, name)
	if err != nil {
		if len(evs) > 0 {
			return evs, nil
		}
		return nil, err
	}
	out := evs[:0]
	for _, e := range evs {
		if !e.At.Before(cl.CreatedAt) {
			out = append(out, e)
		}
	}
	return out, nil
}

// GetJob returns a job.
func (svc *Service) GetJob(ctx context.Context, id string) (api.Job, error) {
	j, err := svc.store.GetJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Job{}, jobspec.NotFound("job %q not found", id)
	}
	return j.Job, err
}

// ListJobs returns jobs newest first, of one cluster or ("") all.
func (svc *Service) ListJobs(ctx context.Context, cluster string) ([]api.Job, error) {
	js, err := svc.store.ListJobs(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out := make([]api.Job, 0, len(js))
	for _, j := range js {
		out = append(out, j.Job)
	}
	return out, nil
}

// view turns a stored cluster into its API form.
func (svc *Service) view(cl store.Cluster) api.Cluster { return View(cl) }

// View is a stored cluster as the API shows it (no secret): its spec,
// status and connection details.
func View(cl store.Cluster) api.Cluster {
	conn := api.Connection{Sentinels: []string{}, MasterNames: []string{},
		PasswordRef: "GET /api/v1/clusters/" + cl.Name + "/credentials"}
	for i := 0; i < cl.Spec.Shards; i++ {
		conn.MasterNames = append(conn.MasterNames, spec.MasterName(cl.Name, i))
	}
	for _, s := range cl.Status.Sentinels {
		conn.Sentinels = append(conn.Sentinels, s.Address)
	}
	if cl.Status.Shards == nil {
		cl.Status.Shards = []api.ShardStatus{}
	}
	if cl.Status.Sentinels == nil {
		cl.Status.Sentinels = []api.SentinelStatus{}
	}
	return api.Cluster{Name: cl.Name, Spec: cl.Spec, Status: cl.Status, Connection: conn, CreatedAt: cl.CreatedAt}
}

// randomSecret returns a 256-bit hex password.
func randomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// CreateCluster validates a create request, stores the cluster and its
// create job in one transaction and hands the job to the runner.
func (c *Controller) CreateCluster(ctx context.Context, req api.CreateClusterRequest) (api.Cluster, api.Job, error) {
	s, err := spec.FromCreateRequest(req)
	if err != nil {
		return api.Cluster{}, api.Job{}, err
	}
	if err := c.checkCapacity(ctx, spec.InstanceCount(s)); err != nil {
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
	job := newJob(api.JobCreate, req.Name, now)
	if err := c.store.Admit(ctx, &cl, job, c.admissionCheck(spec.InstanceCount(s))); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Cluster{}, api.Job{}, conflict("cluster %q already exists", req.Name)
		}
		return api.Cluster{}, api.Job{}, err
	}
	c.Kick()
	return c.view(cl), job.Job, nil
}

// checkCapacity refuses early a request that adds need instances the
// platform has no room for (the authoritative check is admissionCheck,
// run again by store.Admit in the transaction that stores the job).
func (c *Controller) checkCapacity(ctx context.Context, need int) error {
	var a store.Admission
	var err error
	if a.Instances, err = c.store.ListAllInstances(ctx); err != nil {
		return err
	}
	if a.Unfinished, err = c.store.UnfinishedJobs(ctx); err != nil {
		return err
	}
	cls, err := c.store.ListClusters(ctx)
	if err != nil {
		return err
	}
	a.Specs = map[string]api.ClusterSpec{}
	for _, cl := range cls {
		a.Specs[cl.Name] = cl.Spec
	}
	return c.admissionCheck(need)(a)
}

// admissionCheck refuses a job that adds need instances beyond what the
// platform has left once every recorded instance and every instance an
// unfinished job has still to add are counted: concurrent creates and
// scales cannot be accepted past the platform's capacity and fail later.
func (c *Controller) admissionCheck(need int) func(store.Admission) error {
	return func(a store.Admission) error {
		if need <= 0 {
			return nil
		}
		taken := make([]platform.Endpoint, 0, len(a.Instances))
		records := map[string]int{}
		for _, in := range a.Instances {
			taken = append(taken, endpoint(in))
			records[in.Cluster]++
		}
		pending := 0
		for _, j := range a.Unfinished {
			pending += outstanding(j, a.Specs, records)
		}
		cp := c.platform.Capacity(taken)
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
		var p scaleParams
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
func (c *Controller) DeleteCluster(ctx context.Context, name string) (api.Job, error) {
	if _, err := c.getCluster(ctx, name); err != nil {
		return api.Job{}, err
	}
	job := newJob(api.JobDelete, name, time.Now().UTC())
	if err := c.createJob(ctx, job); err != nil {
		return api.Job{}, err
	}
	c.Kick()
	return job.Job, nil
}

// createJob stores a job, explaining a conflict with the job in the way.
func (c *Controller) createJob(ctx context.Context, job store.Job) error {
	err := c.store.CreateJob(ctx, job)
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	if err := c.laneConflict(ctx, job); err != nil {
		return err
	}
	return conflict("cluster %q already has a job in progress", job.Cluster)
}

// laneConflict names the unfinished job that holds job's lane, if any.
func (c *Controller) laneConflict(ctx context.Context, job store.Job) error {
	lock := store.JobLock(job.Kind, job.Cluster)
	if jobs, err := c.store.ListJobs(ctx, job.Cluster); err == nil {
		for _, j := range jobs {
			if !j.Done() && store.JobLock(j.Kind, j.Cluster) == lock {
				return conflict("cluster %q already has a %s job in progress (%s, %s); wait for it to finish", job.Cluster, j.Kind, j.ID, j.State)
			}
		}
	}
	return nil
}

func (c *Controller) getCluster(ctx context.Context, name string) (store.Cluster, error) {
	cl, err := c.store.GetCluster(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return cl, notFound("cluster %q not found", name)
	}
	return cl, err
}

// GetCluster returns the API view of a cluster.
func (c *Controller) GetCluster(ctx context.Context, name string) (api.Cluster, error) {
	cl, err := c.getCluster(ctx, name)
	if err != nil {
		return api.Cluster{}, err
	}
	return c.view(cl), nil
}

// ListClusters returns every cluster.
func (c *Controller) ListClusters(ctx context.Context) ([]api.Cluster, error) {
	cls, err := c.store.ListClusters(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.Cluster, 0, len(cls))
	for _, cl := range cls {
		out = append(out, c.view(cl))
	}
	return out, nil
}

// Credentials returns a cluster's passwords.
func (c *Controller) Credentials(ctx context.Context, name string) (api.Credentials, error) {
	cl, err := c.getCluster(ctx, name)
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
func (c *Controller) Events(ctx context.Context, name string) ([]api.Event, error) {
	evs, err := c.store.ListEvents(ctx, name, 1000)
	if err != nil {
		return nil, err
	}
	cl, err := c.getCluster(ctx, name)
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
func (c *Controller) GetJob(ctx context.Context, id string) (api.Job, error) {
	j, err := c.store.GetJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Job{}, notFound("job %q not found", id)
	}
	return j.Job, err
}

// ListJobs returns jobs newest first, of one cluster or ("") all.
func (c *Controller) ListJobs(ctx context.Context, cluster string) ([]api.Job, error) {
	js, err := c.store.ListJobs(ctx, cluster)
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
func (c *Controller) view(cl store.Cluster) api.Cluster {
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

func newJob(kind, cluster string, now time.Time) store.Job {
	return store.Job{Job: api.Job{
		ID: NewID("j"), Kind: kind, Cluster: cluster, State: api.StatePending,
		Message: "waiting to start", Steps: []api.Step{}, CreatedAt: now,
	}}
}

// randomSecret returns a 256-bit hex password.
func randomSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// NewID returns a sortable unique id: prefix, millisecond time, randomness,
// in Crockford base32 like a ULID.
func NewID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b strings.Builder
	b.WriteString(prefix + "_")
	ms := uint64(time.Now().UnixMilli())
	for i := 9; i >= 0; i-- {
		b.WriteByte(alphabet[(ms>>(uint(i)*5))&31])
	}
	r := make([]byte, 10)
	_, _ = rand.Read(r)
	for _, x := range r {
		b.WriteByte(alphabet[x&31])
	}
	return b.String()
}

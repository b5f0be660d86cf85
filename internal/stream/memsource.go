package stream

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// MemSource is a Source held in memory, for tests: what it holds is what
// the hub reads.
type MemSource struct {
	mu       sync.Mutex
	clusters map[string]api.Cluster
	jobs     map[string]api.Job
	events   map[string][]api.Event // oldest first
}

// NewMemSource returns an empty source.
func NewMemSource() *MemSource {
	return &MemSource{clusters: map[string]api.Cluster{}, jobs: map[string]api.Job{}, events: map[string][]api.Event{}}
}

// PutCluster adds or replaces a cluster.
func (m *MemSource) PutCluster(cl api.Cluster) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clusters[cl.Name] = cl
}

// DeleteCluster removes a cluster.
func (m *MemSource) DeleteCluster(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.clusters, name)
}

// PutJob adds or replaces a job.
func (m *MemSource) PutJob(j api.Job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[j.ID] = j
}

// AddEvent appends an event.
func (m *MemSource) AddEvent(e api.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events[e.Cluster] = append(m.events[e.Cluster], e)
}

func (m *MemSource) ListClusters(context.Context) ([]api.Cluster, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]api.Cluster, 0, len(m.clusters))
	for _, cl := range m.clusters {
		out = append(out, cl)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Name < out[k].Name })
	return out, nil
}

func (m *MemSource) JobsSince(_ context.Context, since time.Time) ([]api.Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []api.Job
	for _, j := range m.jobs {
		if !j.Done() || (j.FinishedAt != nil && !j.FinishedAt.Before(since)) {
			out = append(out, j)
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].CreatedAt.Before(out[k].CreatedAt) })
	return out, nil
}

func (m *MemSource) RecentEvents(_ context.Context, cluster string, limit int) ([]api.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	evs := m.events[cluster]
	var out []api.Event
	for i := len(evs) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, evs[i])
	}
	return out, nil
}

func (m *MemSource) UnfinishedJobs(ctx context.Context) ([]api.Job, error) {
	all, _ := m.JobsSince(ctx, time.Now().Add(24*time.Hour))
	var out []api.Job
	for _, j := range all {
		if !j.Done() {
			out = append(out, j)
		}
	}
	return out, nil
}

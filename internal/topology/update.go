package topology

import (
	"maps"
	"slices"
	"strconv"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// ApplyUpdate returns the spec after an update request. It is pure.
func ApplyUpdate(s api.ClusterSpec, req api.UpdateClusterRequest) api.ClusterSpec {
	set := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setS := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&s.Shards, req.Shards)
	set(&s.Replicas, req.Replicas)
	set(&s.Sentinels, req.Sentinels)
	setS(&s.Maxmemory, req.Maxmemory)
	setS(&s.MaxmemoryPolicy, req.MaxmemoryPolicy)
	setS(&s.Persistence, req.Persistence)
	if req.Config != nil {
		s.Config = maps.Clone(req.Config)
	} else {
		s.Config = maps.Clone(s.Config)
	}
	if req.FastFailover != nil {
		s.FastFailover = *req.FastFailover
	}
	set(&s.MinReplicasToWrite, req.MinReplicasToWrite)
	if req.Sentinel != nil {
		set(&s.Sentinel.DownAfterMs, req.Sentinel.DownAfterMs)
		set(&s.Sentinel.FailoverTimeoutMs, req.Sentinel.FailoverTimeoutMs)
		set(&s.Sentinel.ParallelSyncs, req.Sentinel.ParallelSyncs)
	}
	return s
}

// ConfigChanges lists the CONFIG SET pairs that turn spec from into to. It
// is pure.
func ConfigChanges(from, to api.ClusterSpec) [][2]string {
	var out [][2]string
	if from.Maxmemory != to.Maxmemory {
		n, _ := spec.ParseSize(to.Maxmemory)
		out = append(out, [2]string{"maxmemory", strconv.FormatInt(n, 10)})
	}
	if from.MaxmemoryPolicy != to.MaxmemoryPolicy {
		out = append(out, [2]string{"maxmemory-policy", to.MaxmemoryPolicy})
	}
	if from.Persistence != to.Persistence {
		out = append(out, spec.PersistenceSettings(to.Persistence)...)
	}
	if from.MinReplicasToWrite != to.MinReplicasToWrite || from.Sentinel.DownAfterMs != to.Sentinel.DownAfterMs {
		out = append(out, spec.WriteSafetySettings(to)...)
	}
	keys := slices.Sorted(maps.Keys(to.Config))
	for _, k := range keys {
		if from.Config[k] != to.Config[k] {
			out = append(out, [2]string{k, to.Config[k]})
		}
	}
	return out
}

package kubernetes

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// Ports every instance listens on: each pod has an address of its own.
const (
	RedisPort    = 6379
	SentinelPort = 26379
)

// Labels and annotations the platform sets.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"
	LabelCluster   = "redis-manager.io/cluster"
	LabelShard     = "redis-manager.io/shard"
	LabelSet       = "redis-manager.io/set"
	// LabelRole is moved by the manager onto the shard's master (master)
	// and its replicas (replica); the -master and -replicas Services
	// select on it.
	LabelRole = "redis-manager.io/role"

	managedBy       = "redis-manager"
	annTemplateHash = "redis-manager.io/template-hash"

	RoleMaster  = "master"
	RoleReplica = "replica"
)

// member is where an instance lives: its StatefulSet and ordinal. An
// instance's name is its pod's name, <set>-<ordinal>, as StatefulSets name
// pods: spec.InstanceName gives <cluster>-<shard>-<ordinal> (set
// <cluster>-<shard>), spec.SentinelInstanceName <cluster>-sentinel-<ordinal>
// (set <cluster>-sentinel).
type member struct {
	Cluster string
	Set     string
	Ordinal int
}

func parseMember(id platform.ID) (member, error) {
	i := strings.LastIndexByte(id.Name, '-')
	if i <= 0 {
		return member{}, fmt.Errorf("instance %q: want <set>-<ordinal>", id.Name)
	}
	o, err := strconv.Atoi(id.Name[i+1:])
	if err != nil || o < 0 || strconv.Itoa(o) != id.Name[i+1:] {
		return member{}, fmt.Errorf("instance %q: want <set>-<ordinal>", id.Name)
	}
	if !strings.HasPrefix(id.Name, id.Cluster+"-") {
		return member{}, fmt.Errorf("instance %q does not start with its cluster's name %q", id.Name, id.Cluster)
	}
	return member{Cluster: id.Cluster, Set: id.Name[:i], Ordinal: o}, nil
}

// kindOfSet tells a Sentinel set from a shard by its name.
func kindOfSet(cluster, set string) string {
	if set == cluster+"-sentinel" {
		return platform.KindSentinel
	}
	return platform.KindRedis
}

// headless is the name of the governing (headless) Service of a set: the
// shard's own name for a shard; <cluster>-sentinels for the Sentinels, whose
// <cluster>-sentinel is the Service clients use.
func headless(cluster, set string) string {
	if kindOfSet(cluster, set) == platform.KindSentinel {
		return cluster + "-sentinels"
	}
	return set
}

// shardOf returns the shard number of a shard's set, -1 for Sentinels.
func shardOf(cluster, set string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(set, cluster+"-"))
	if err != nil || !strings.HasPrefix(set, cluster+"-") {
		return -1
	}
	return n
}

func portOf(kind string) int {
	if kind == platform.KindSentinel {
		return SentinelPort
	}
	return RedisPort
}

func containerOf(kind string) string {
	if kind == platform.KindSentinel {
		return "sentinel"
	}
	return "redis"
}

// Object names of a cluster.
func rootName(cluster string) string   { return cluster + "-config" }
func secretName(cluster string) string { return cluster + "-auth" }
func pvcName(pod string) string        { return "data-" + pod }

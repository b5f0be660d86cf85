package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Where a pod's files are.
const (
	// binary and redisServer are where the image holds them (the
	// Dockerfile and the node's image writer put them there).
	binary      = "/usr/local/bin/redis-manager"
	redisServer = "/usr/bin/redis-server"

	dataDir   = "/data"
	configDir = "/etc/redis-manager/config"
	authDir   = "/etc/redis-manager/auth"
)

// Keys of the cluster's ConfigMap and Secret.
const (
	keyRedisConf       = "redis.conf"
	keySentinelConf    = "sentinel.conf"
	keyRedisAuth       = "redis-auth.conf"
	keySentinelAuth    = "sentinel-auth.conf"
	keyPassword        = "password"
	keySentinelPasswd  = "sentinel-password"
	sentinelVolumeSize = "64Mi"
	// forkHeadroom is memory beyond maxmemory for the process itself and
	// the copy-on-write of a BGSAVE or full sync's fork.
	baseMemory = 64 << 20
)

func labels(cluster, set, kind string) map[string]string {
	l := map[string]string{
		LabelManagedBy: managedBy,
		LabelPartOf:    "redis-manager",
		LabelInstance:  cluster,
		LabelCluster:   cluster,
		LabelSet:       set,
	}
	if kind == platform.KindSentinel {
		l[LabelName] = "redis-sentinel"
		l[LabelComponent] = "sentinel"
	} else {
		l[LabelName] = "redis"
		l[LabelComponent] = "redis"
		l[LabelShard] = strconv.Itoa(shardOf(cluster, set))
	}
	return l
}

func clusterLabels(cluster string) map[string]string {
	return map[string]string{LabelManagedBy: managedBy, LabelPartOf: "redis-manager", LabelInstance: cluster, LabelCluster: cluster}
}

func selector(cluster, set string) map[string]string {
	return map[string]string{LabelCluster: cluster, LabelSet: set}
}

// owner is the owner reference every object of a cluster carries: its
// ConfigMap, so deleting that removes the rest (Kubernetes' garbage
// collector).
func owner(root *corev1.ConfigMap) []metav1.OwnerReference {
	t := true
	return []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: root.Name, UID: root.UID, BlockOwnerDeletion: &t}}
}

// memoryOf is a redis pod's memory request and limit: maxmemory plus a
// base, and for the limit room for a fork's copy-on-write (up to the whole
// dataset while a BGSAVE or a full sync runs under write load). Without
// maxmemory there is no bound to derive: no limit.
func memoryOf(maxmemory string) (req, limit *resource.Quantity) {
	n, err := spec.ParseSize(maxmemory)
	if err != nil || n <= 0 {
		return resource.NewQuantity(baseMemory, resource.BinarySI), nil
	}
	return resource.NewQuantity(n+baseMemory, resource.BinarySI), resource.NewQuantity(2*n+baseMemory, resource.BinarySI)
}

// storageOf is the size of a redis pod's volume: room for the RDB (at most
// the dataset) and its temporary copy while a new one is written, at least
// 1 GiB.
func storageOf(maxmemory string) resource.Quantity {
	n, err := spec.ParseSize(maxmemory)
	size := int64(1 << 30)
	if err == nil && 2*n > size {
		size = 2 * n
	}
	return *resource.NewQuantity(size, resource.BinarySI)
}

// fqdn is the stable DNS name of a pod of a set.
func (p *Platform) fqdn(cluster, set string, ordinal int) string {
	return fmt.Sprintf("%s-%d.%s.%s.svc.%s", set, ordinal, headless(cluster, set), p.opts.Namespace, p.opts.ClusterDomain)
}

// statefulSet builds the StatefulSet of a set with n pods.
func (p *Platform) statefulSet(root *corev1.ConfigMap, m member, kind string, s platform.InstanceSpec, n int32) *appsv1.StatefulSet {
	lbl := labels(m.Cluster, m.Set, kind)
	port := int32(portOf(kind))
	self := fmt.Sprintf("$(POD_NAME).%s.%s.svc.%s:%d", headless(m.Cluster, m.Set), p.opts.Namespace, p.opts.ClusterDomain, port)
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	secretEnv := func(name, key string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secretName(m.Cluster)}, Key: key}}}
	}
	var cmd []string
	passwordFile := authDir + "/" + keyPassword
	if kind == platform.KindSentinel {
		passwordFile = authDir + "/" + keySentinelPasswd
	}
	res := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}}
	storage := resource.MustParse(sentinelVolumeSize)
	if kind == platform.KindSentinel {
		cmd = []string{binary, "instance", "sentinel", "--redis-server", redisServer, "--config", dataDir + "/sentinel.conf",
			"--compose", configDir + "/" + keySentinelConf + "," + authDir + "/" + keySentinelAuth, "--self", self}
		env = append(env, secretEnv(instance.EnvProbePassword, keySentinelPasswd))
		res.Requests[corev1.ResourceMemory] = resource.MustParse("32Mi")
	} else {
		cmd = []string{binary, "instance", "run", "--redis-server", redisServer, "--config", dataDir + "/redis.conf", "--data-dir", dataDir,
			"--compose", configDir + "/" + keyRedisConf + "," + authDir + "/" + keyRedisAuth, "--self", self,
			"--master-name", s.Boot.MasterName, "--planned-master", s.Boot.PlannedMaster,
			"--sentinels", strings.Join(s.Boot.Sentinels, ",")}
		env = append(env, secretEnv(instance.EnvProbePassword, keyPassword), secretEnv(instance.EnvSentinelPassword, keySentinelPasswd))
		req, limit := memoryOf(s.Redis.Spec.Maxmemory)
		res.Requests[corev1.ResourceMemory] = *req
		if limit != nil {
			res.Limits = corev1.ResourceList{corev1.ResourceMemory: *limit}
		}
		storage = storageOf(s.Redis.Spec.Maxmemory)
	}
	mode := int32(0o400)
	grace := int64(30)
	never := false
	pod := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: lbl},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			EnableServiceLinks:            &never,
			AutomountServiceAccountToken:  &never,
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 100,
					PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname",
						LabelSelector: &metav1.LabelSelector{MatchLabels: selector(m.Cluster, m.Set)}},
				}},
			}},
			Containers: []corev1.Container{{
				Name:            containerOf(kind),
				Image:           p.opts.Image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         cmd,
				Env:             env,
				Ports:           []corev1.ContainerPort{{Name: containerOf(kind), ContainerPort: port}},
				Resources:       res,
				VolumeMounts: []corev1.VolumeMount{
					{Name: "data", MountPath: dataDir},
					{Name: "config", MountPath: configDir, ReadOnly: true},
					{Name: "auth", MountPath: authDir, ReadOnly: true},
				},
				// PONG, not LOADING: a replica loading its dataset takes no
				// reads. A BGSAVE forks; the main thread goes on answering.
				ReadinessProbe: &corev1.Probe{
					ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
						binary, "instance", "probe", "--addr", "127.0.0.1:" + strconv.Itoa(int(port)), "--password-file", passwordFile}}},
					PeriodSeconds: 2, TimeoutSeconds: 5, FailureThreshold: 3,
				},
				// The port alone: a busy instance (a long command, a big
				// load) is not restarted for being slow.
				LivenessProbe: &corev1.Probe{
					ProbeHandler:        corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(port)}},
					InitialDelaySeconds: 10, PeriodSeconds: 10, TimeoutSeconds: 5, FailureThreshold: 6,
				},
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: root.Name}}}},
				{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: secretName(m.Cluster), DefaultMode: &mode}}},
			},
		},
	}
	pvc := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: lbl},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: storage}},
		},
	}
	if p.opts.StorageClass != "" {
		sc := p.opts.StorageClass
		pvc.Spec.StorageClassName = &sc
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: m.Set, Namespace: p.opts.Namespace, Labels: lbl, OwnerReferences: owner(root)},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &n,
			ServiceName:         headless(m.Cluster, m.Set),
			PodManagementPolicy: appsv1.ParallelPodManagement,
			// Pods are replaced only when they die or the manager deletes
			// them: a template change never restarts a master behind
			// Sentinel's back.
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType},
			// A pod removed by scaling in, or with its set, takes its data
			// with it; a pod that only restarts keeps it.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
			},
			Selector:             &metav1.LabelSelector{MatchLabels: selector(m.Cluster, m.Set)},
			Template:             pod,
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{pvc},
		},
	}
	if kind == platform.KindRedis {
		p.seedTemplate(root, m, &sts.Spec.Template)
	}
	h := sha256.New()
	_ = json.NewEncoder(h).Encode(sts.Spec.Template)
	_ = json.NewEncoder(h).Encode(sts.Spec.VolumeClaimTemplates)
	sts.Annotations = map[string]string{annTemplateHash: hex.EncodeToString(h.Sum(nil))[:16]}
	return sts
}

// services are the Services of a set: the governing headless one (pods'
// DNS names, published before they are ready so a booting replica can be
// named), and for clients the shard's -master and -replicas (by role label)
// or the cluster's -sentinel.
func (p *Platform) services(root *corev1.ConfigMap, m member, kind string) []*corev1.Service {
	port := int32(portOf(kind))
	ports := []corev1.ServicePort{{Name: containerOf(kind), Port: port, TargetPort: intstr.FromInt32(port)}}
	mk := func(name string, headlessSvc, notReady bool, sel map[string]string) *corev1.Service {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: p.opts.Namespace, Labels: labels(m.Cluster, m.Set, kind), OwnerReferences: owner(root)},
			Spec:       corev1.ServiceSpec{Selector: sel, Ports: ports, PublishNotReadyAddresses: notReady},
		}
		if headlessSvc {
			svc.Spec.ClusterIP = corev1.ClusterIPNone
		}
		return svc
	}
	out := []*corev1.Service{mk(headless(m.Cluster, m.Set), true, true, selector(m.Cluster, m.Set))}
	if kind == platform.KindSentinel {
		return append(out, mk(m.Cluster+"-sentinel", false, false, selector(m.Cluster, m.Set)))
	}
	withRole := func(role string) map[string]string {
		s := selector(m.Cluster, m.Set)
		s[LabelRole] = role
		return s
	}
	// The master label is the manager's word, from every Sentinel: the
	// -master Service follows it at once, not after the next readiness
	// probe. Reads go only to replicas that are ready (not loading).
	return append(out, mk(m.Set+"-master", false, true, withRole(RoleMaster)), mk(m.Set+"-replicas", false, false, withRole(RoleReplica)))
}

// disruptionBudget lets voluntary evictions (a node drain) take one pod of
// a set at a time.
func (p *Platform) disruptionBudget(root *corev1.ConfigMap, m member, kind string) *policyv1.PodDisruptionBudget {
	one := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: m.Set, Namespace: p.opts.Namespace, Labels: labels(m.Cluster, m.Set, kind), OwnerReferences: owner(root)},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &one,
			Selector: &metav1.LabelSelector{MatchLabels: selector(m.Cluster, m.Set)}},
	}
}

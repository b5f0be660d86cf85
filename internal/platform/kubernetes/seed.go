package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/platform"
)

// terminationLog is where a container's termination message is written
// (Kubernetes' default terminationMessagePath).
const terminationLog = "/dev/termination-log"

// seedKey is the key of the cluster's ConfigMap holding a pod's seed; the
// pod sees it as a file of its config volume.
func seedKey(pod string) string { return "seed-" + pod + ".json" }

// Seed implements platform.Platform: the seed goes into the cluster's
// ConfigMap (created here when the cluster has none yet) under the pod's
// name, with no secret in it. The pod's entrypoint (instance run
// --seed-file) fetches it into its volume before its first boot, checking
// the RDB's structure and CRC-64 and the recorded size and CRC-64, with
// the S3 credentials of Options.BackupCredentialsSecret; a pod whose volume
// holds data already never seeds. A failed fetch leaves nothing and stops
// the pod before Redis starts, with the error (and its kind) in the
// container's termination message: Ensure of the instance fails with it.
// Once the instance serves, Ensure takes its seed out of the ConfigMap.
// The bytes pass through the pod only: src.Progress is not called.
func (p *Platform) Seed(ctx context.Context, id platform.ID, src platform.SeedSource) error {
	m, err := parseMember(id)
	if err != nil {
		return err
	}
	if kindOfSet(m.Cluster, m.Set) != platform.KindRedis {
		return fmt.Errorf("seed %s: not a redis-server", id.Name)
	}
	if err := podReachable(src.TargetURL); err != nil {
		return fmt.Errorf("seed %s: %w", id.Name, err)
	}
	if pod, err := p.pods.Pods(p.opts.Namespace).Get(id.Name); err == nil && running(pod, platform.KindRedis) {
		return fmt.Errorf("seed %s: %w", id.Name, platform.ErrRunning)
	}
	b, err := json.Marshal(instance.SeedFileOf(src))
	if err != nil {
		return err
	}
	cms := p.cs.CoreV1().ConfigMaps(p.opts.Namespace)
	for range 5 {
		cur, err := cms.Get(ctx, rootName(m.Cluster), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: rootName(m.Cluster), Namespace: p.opts.Namespace,
				Labels: clusterLabels(m.Cluster)}, Data: map[string]string{seedKey(id.Name): string(b)}}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("seed %s: create ConfigMap %s: %w", id.Name, rootName(m.Cluster), err)
			}
			p.log.Info("seed recorded", "instance", id.Name, "key", src.Key)
			return nil
		}
		if err != nil {
			return fmt.Errorf("seed %s: get ConfigMap %s: %w", id.Name, rootName(m.Cluster), err)
		}
		if cur.Labels[LabelCluster] != m.Cluster {
			return fmt.Errorf("seed %s: ConfigMap %s exists and is not cluster %s's", id.Name, cur.Name, m.Cluster)
		}
		if cur.Data == nil {
			cur.Data = map[string]string{}
		}
		cur.Data[seedKey(id.Name)] = string(b)
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("seed %s: update ConfigMap %s: %w", id.Name, rootName(m.Cluster), err)
		}
		p.log.Info("seed recorded", "instance", id.Name, "key", src.Key)
		return nil
	}
	return fmt.Errorf("seed %s: update ConfigMap %s: conflicts on every try", id.Name, rootName(m.Cluster))
}

// seedTemplate makes a shard's pod template seed its pods that have a seed
// in the cluster's ConfigMap (a restore): the entrypoint reads the pod's
// seed file, and the S3 credentials come from the Secret the user named.
// A set without a pending seed keeps its template as it is.
func (p *Platform) seedTemplate(root *corev1.ConfigMap, m member, tpl *corev1.PodTemplateSpec) {
	pending := false
	for k := range root.Data {
		if strings.HasPrefix(k, "seed-"+m.Set+"-") && strings.HasSuffix(k, ".json") {
			pending = true
		}
	}
	if !pending {
		return
	}
	for i := range tpl.Spec.Containers {
		c := &tpl.Spec.Containers[i]
		if c.Name != containerOf(platform.KindRedis) {
			continue
		}
		c.Command = append(c.Command, "--seed-file", configDir+"/"+seedKey("$(POD_NAME)"), "--seed-error-file", terminationLog)
		c.EnvFrom = append(c.EnvFrom, p.credentials()...)
	}
}

// seedFailure is the error a pod's entrypoint reported for a failed seed
// (its termination message, a task protocol line), nil if none.
func seedFailure(pod *corev1.Pod) error {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != containerOf(platform.KindRedis) {
			continue
		}
		for _, t := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
			if t == nil || t.Message == "" {
				continue
			}
			var line platform.TaskLine
			if json.Unmarshal([]byte(t.Message), &line) == nil && line.Error != nil {
				return fmt.Errorf("pod %s did not boot: %w", pod.Name, instance.TaskErr(*line.Error))
			}
		}
	}
	return nil
}

// seedDone takes a served instance's seed out of the cluster's ConfigMap:
// a pod that starts later on an empty volume must not boot from an old
// backup (its entrypoint also never seeds over data it has).
func (p *Platform) seedDone(ctx context.Context, cluster, pod string) error {
	cms := p.cs.CoreV1().ConfigMaps(p.opts.Namespace)
	for range 5 {
		cur, err := cms.Get(ctx, rootName(cluster), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("get ConfigMap %s: %w", rootName(cluster), err)
		}
		if _, ok := cur.Data[seedKey(pod)]; !ok {
			return nil
		}
		delete(cur.Data, seedKey(pod))
		_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update ConfigMap %s: %w", rootName(cluster), err)
		}
		p.log.Info("seed done", "instance", pod)
		return nil
	}
	return fmt.Errorf("update ConfigMap %s: conflicts on every try", rootName(cluster))
}

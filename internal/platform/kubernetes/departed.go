package kubernetes

import (
	"net"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// A deleted pod's container runs on until the kubelet has killed it:
// after a forced deletion (grace 0) the pod is gone from the API at once,
// while its redis-server still serves at the pod's last address for up to
// a couple of seconds (the kubelet's reaction and its minimum grace), and
// its name already leads nowhere. The platform remembers that address for
// a while, so that the manager's fast failover can wait for that process
// to be gone before it reads the replicas' offsets (platform.Departed).

// departedFor is how long a deleted pod's last address is remembered.
const departedFor = time.Minute

type departedPod struct {
	ip  string
	uid types.UID
	at  time.Time
}

type departedPods struct {
	mu   sync.Mutex
	pods map[string]departedPod
}

func (d *departedPods) note(pod *corev1.Pod) {
	if pod.Status.PodIP == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pods == nil {
		d.pods = map[string]departedPod{}
	}
	now := time.Now()
	for name, r := range d.pods {
		if now.Sub(r.at) > departedFor {
			delete(d.pods, name)
		}
	}
	d.pods[pod.Name] = departedPod{ip: pod.Status.PodIP, uid: pod.UID, at: now}
}

func (d *departedPods) get(name string) (departedPod, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.pods[name]
	return r, ok && time.Since(r.at) <= departedFor
}

// DepartedAddr implements platform.Departed: the last address of a Redis
// instance's pod, when that pod is being deleted or was deleted within
// departedFor (its IP address: its name leads to its successor, or
// nowhere).
func (p *Platform) DepartedAddr(id platform.ID) (string, bool) {
	m, err := parseMember(id)
	if err != nil || m.Set == id.Cluster+"-sentinel" {
		return "", false // Redis instances only
	}
	port := strconv.Itoa(portOf(platform.KindRedis))
	if pod, err := p.pods.Pods(p.opts.Namespace).Get(id.Name); err == nil && pod.DeletionTimestamp != nil && pod.Status.PodIP != "" {
		return net.JoinHostPort(pod.Status.PodIP, port), true
	}
	r, ok := p.departed.get(id.Name)
	if !ok {
		return "", false
	}
	return net.JoinHostPort(r.ip, port), true
}

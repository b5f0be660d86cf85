// Command k8s-backup measures backup throughput on the Kubernetes platform
// (the test node: hack/k8s-node/up): a backup through the API, which runs as
// a Kubernetes Job (`redis-manager task snapshot`: the replica's RDB
// streamed, CRC-64 checked, uploaded to S3 in parts), next to
// `redis-cli --rdb` run in a one-off pod of the same image against the same
// replica, alternately, in the same run; and, to tell the engine's cost
// from the S3 server's, the same engine in a one-off pod writing to a file:
//
//	go run ./bench/k8s-backup -bin bin/redis-manager -image "$IMAGE" -mb 256 -runs 3
//
// The S3 server is gofakes3 (objects in memory) in this process, listening
// on the node's host address, which pods reach; redis-cli writes to an
// emptyDir. Both read the replica over the pod network. The transfer figure
// is bytes over the time the transfer itself took: for the Job, the
// duration its result line reports (backup.Run in the pod: connect, SYNC,
// the replica's fork, the stream, the upload's completion); for redis-cli, from its "SYNC
// sent" line to its "Transfer finished" line, by the kubelet's log
// timestamps. End to end is from the request (POST /backups; the pod's
// creation) to the outcome seen (the API job done; the pod Succeeded), pod
// scheduling and start included.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/redis/go-redis/v9"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/bench/benchenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	runs := flag.Int("runs", 3, "pairs of backups (Job, redis-cli)")
	sizeMB := flag.Int("mb", 256, "dataset, MB of 1 KB random values")
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	image := flag.String("image", os.Getenv("IMAGE"), "the redis-manager image on the cluster")
	storageClass := flag.String("storage-class", "", "PVC storage class (default: the cluster's default)")
	host := flag.String("host", "10.217.0.1", "this machine's address the pods reach (the S3 server listens there)")
	ns := flag.String("namespace", "rm-bench-backup", "namespace to create, use and delete")
	flag.Parse()
	if err := run(*bin, *kubeconfig, *image, *storageClass, *host, *ns, *sizeMB, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type sample struct {
	bytes              int64
	transfer, endToEnd time.Duration
}

func (s sample) rate() float64 { return float64(s.bytes) / 1e6 / s.transfer.Seconds() }

func run(bin, kubeconfig, image, storageClass, host, ns string, sizeMB, runs int) error {
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}

	// The S3 server, where pods reach this machine.
	be := s3mem.New()
	if err := be.CreateBucket("backups"); err != nil {
		return err
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return fmt.Errorf("S3 server on %s: %w", host, err)
	}
	srv := &http.Server{Handler: gofakes3.New(be).Server(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	q := url.Values{"endpoint": {"http://" + l.Addr().String()}, "region": {"us-east-1"}, "pathStyle": {"true"}}
	target := (&url.URL{Scheme: "s3", Host: "backups", Path: "/bench", RawQuery: q.Encode()}).String()
	creds := map[string]string{"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"}
	for k, v := range creds {
		os.Setenv(k, v) // the manager's own reads and writes (sidecars)
	}

	// A namespace of an earlier run may still be going.
	if err := nsGone(ctx, cs, ns); err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		_ = nsGone(context.Background(), cs, ns)
	}()
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bench-s3"}, StringData: creds},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	args := []string{"--platform", "kubernetes", "--kubeconfig", kubeconfig, "--namespace", ns, "--image", image,
		"--backup-target", target, "--backup-credentials-secret", "bench-s3"}
	if storageClass != "" {
		args = append(args, "--storage-class", storageClass)
	}
	m, err := benchenv.Start(bin, 26100, 10, args...)
	if err != nil {
		return err
	}
	defer m.Stop()
	c := m.Client

	const name = "bk"
	cres, err := c.CreateCluster(ctx, api.CreateClusterRequest{Name: name, Shards: benchenv.Int(1), Replicas: benchenv.Int(1), Sentinels: benchenv.Int(3)})
	if err != nil {
		return err
	}
	if _, err := c.WaitJob(ctx, cres.Job.ID, nil); err != nil {
		return err
	}
	cl, err := c.GetCluster(ctx, name)
	if err != nil {
		return err
	}
	pw, err := c.Credentials(ctx, name)
	if err != nil {
		return err
	}
	sh := cl.Status.Shards[0]
	if sh.Master == nil || len(sh.Replicas) != 1 {
		return fmt.Errorf("cluster %s: want a master and a replica: %+v", name, sh)
	}
	masterIP, err := podIP(ctx, cs, ns, sh.Master.Pod)
	if err != nil {
		return err
	}
	replica := sh.Replicas[0]
	keys, err := populate(ctx, net.JoinHostPort(masterIP, "6379"), pw.Password, sizeMB)
	if err != nil {
		return err
	}
	fmt.Printf("%d keys of 1 KB written to %s; replica %s (%s)\n", keys, sh.Master.Name, replica.Name, replica.Address)

	var jobs, files, clis []sample
	fmt.Printf("\n%-5s %-34s %-34s %s\n", "run", "Job → S3", "engine in a pod → file", "redis-cli --rdb in a pod → file")
	fmt.Printf("%-5s %-34s %-34s %s\n", "", "(transfer rate, s; end to end s)", "", "")
	for i := range runs {
		j, err := backupJob(ctx, c, cs, ns, name, replica.Name)
		if err != nil {
			return fmt.Errorf("run %d, Job: %w", i+1, err)
		}
		f, err := engineFile(ctx, cs, ns, image, name, replica.Address, i)
		if err != nil {
			return fmt.Errorf("run %d, engine to a file: %w", i+1, err)
		}
		r, err := redisCLI(ctx, cs, ns, image, name, replica.Address, i)
		if err != nil {
			return fmt.Errorf("run %d, redis-cli: %w", i+1, err)
		}
		if j.bytes != r.bytes || f.bytes != r.bytes {
			return fmt.Errorf("run %d: %d, %d and %d bytes", i+1, j.bytes, f.bytes, r.bytes)
		}
		jobs, files, clis = append(jobs, j), append(files, f), append(clis, r)
		col := func(x sample) string {
			return fmt.Sprintf("%6.1f MB/s %5.2f s; %5.2f s", x.rate(), x.transfer.Seconds(), x.endToEnd.Seconds())
		}
		fmt.Printf("%-5d %-34s %-34s %s\n", i+1, col(j), col(f), col(r))
	}
	jm, fm, rm := median(jobs), median(files), median(clis)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nbackup of %d keys (%d bytes of RDB) from the same replica, median of %d, same node, same run (load %s):\n",
		keys, jm.bytes, runs, strings.Join(strings.Fields(string(load))[:3], " "))
	line := func(what string, x sample) {
		fmt.Printf("  %-58s %7.1f MB/s  transfer %6.2f s  end to end %6.2f s\n", what, x.rate(), x.transfer.Seconds(), x.endToEnd.Seconds())
	}
	line("redis-manager backup Job (CRC-64, S3 multipart, gofakes3)", jm)
	line("the same engine in a one-off pod to a file (no S3)", fm)
	line("redis-cli --rdb in a one-off pod to a file", rm)
	fmt.Printf("  Job / redis-cli: %.0f %%; engine to a file / redis-cli: %.0f %%\n", 100*jm.rate()/rm.rate(), 100*fm.rate()/rm.rate())
	fmt.Printf("  distinct progress messages of the backup job seen through the API while it ran, per run: %v\n", progressSeen)
	if progressSample != "" {
		fmt.Printf("  e.g. %s\n", progressSample)
	}
	return nil
}

// nsGone waits up to 3 minutes until the namespace does not exist.
func nsGone(ctx context.Context, cs kubernetes.Interface, ns string) error {
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if _, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
	}
	return fmt.Errorf("namespace %s still exists after 3 minutes", ns)
}

// median is the sample of median transfer rate.
func median(s []sample) sample {
	sort.Slice(s, func(i, j int) bool { return s[i].rate() < s[j].rate() })
	return s[len(s)/2]
}

func podIP(ctx context.Context, cs kubernetes.Interface, ns, pod string) (string, error) {
	p, err := cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return p.Status.PodIP, nil
}

// populate writes sizeMB of 1 KB random values and waits until the replica
// has them.
func populate(ctx context.Context, addr, password string, sizeMB int) (int, error) {
	r := redis.NewClient(&redis.Options{Addr: addr, Password: password, Protocol: 2, ReadTimeout: time.Minute})
	defer r.Close()
	n := sizeMB * 1024
	val := make([]byte, 1024)
	for i := 0; i < n; i += 1000 {
		pipe := r.Pipeline()
		for k := i; k < min(i+1000, n); k++ {
			_, _ = rand.Read(val)
			pipe.Set(ctx, "key:"+strconv.Itoa(k), string(val), 0)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return 0, err
		}
	}
	if err := r.Do(ctx, "WAIT", 1, 60000).Err(); err != nil {
		return 0, err
	}
	return n, nil
}

// backupJob backs the cluster up through the API (a Job) and returns the
// record's figures.
func backupJob(ctx context.Context, c *api.Client, cs kubernetes.Interface, ns, cluster, replica string) (sample, error) {
	// The task's result line, from the Job pod's log while it runs (the
	// manager deletes the Job once it has read it).
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	inPod := make(chan time.Duration, 1)
	go func() { inPod <- taskDuration(wctx, cs, ns) }()
	start := time.Now()
	res, err := c.CreateBackup(ctx, cluster, nil)
	if err != nil {
		return sample{}, err
	}
	// The job's progress as the API shows it while the Job runs: the
	// task's progress lines, read from the pod's log as they come.
	seen := map[string]bool{}
	var mid string
	if _, err := c.WaitJob(ctx, res.Job.ID, func(j api.Job) {
		if j.State == api.StateRunning && j.Progress > 0 && j.Progress < 1 && !seen[j.Message] {
			seen[j.Message] = true
			if mid == "" && j.Progress > 0.3 {
				mid = fmt.Sprintf("%.0f %%: %s", 100*j.Progress, j.Message)
			}
		}
	}); err != nil {
		return sample{}, err
	}
	end := time.Since(start)
	progressSeen = append(progressSeen, len(seen))
	if mid != "" {
		progressSample = mid
	}
	var transfer time.Duration
	select {
	case transfer = <-inPod:
	case <-time.After(10 * time.Second):
	}
	if transfer == 0 {
		return sample{}, errors.New("the Job pod's result line was not seen")
	}
	b, err := c.GetBackup(ctx, res.Backups[0].ID)
	if err != nil {
		return sample{}, err
	}
	if b.State != api.StateSucceeded || !b.Verified || b.SourceInstance != replica {
		return sample{}, fmt.Errorf("backup %+v: want succeeded, verified, from %s", b, replica)
	}
	// Old objects go: the S3 server holds them in this process's memory.
	if dj, err := c.DeleteBackup(ctx, b.ID); err == nil {
		_, _ = c.WaitJob(ctx, dj.ID, nil)
	}
	return sample{bytes: b.SizeBytes, transfer: transfer, endToEnd: end}, nil
}

// taskDuration follows the log of the next snapshot Job pod and returns
// the duration its result line reports (backup.Run in the pod).
func taskDuration(ctx context.Context, cs kubernetes.Interface, ns string) time.Duration {
	for ctx.Err() == nil {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "redis-manager.io/task=snapshot"})
		if err == nil {
			for _, p := range pods.Items {
				for _, st := range p.Status.ContainerStatuses {
					if st.State.Running == nil && st.State.Terminated == nil {
						continue
					}
					rc, err := cs.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: st.Name, Follow: true}).Stream(ctx)
					if err != nil {
						continue
					}
					sc := bufio.NewScanner(rc)
					for sc.Scan() {
						var line struct {
							Result *struct {
								DurationMs int64 `json:"durationMs"`
							} `json:"result"`
						}
						if json.Unmarshal(sc.Bytes(), &line) == nil && line.Result != nil {
							rc.Close()
							return time.Duration(line.Result.DurationMs) * time.Millisecond
						}
					}
					rc.Close()
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0
}

// What the API showed of the backup jobs' progress while they ran.
var (
	progressSeen   []int
	progressSample string
)

var cliBytes = regexp.MustCompile(`(\d+) bytes`)

// oneOff runs a pod of the image with command (the cluster's password in
// REDISCLI_AUTH and as /auth/password, an emptyDir on /scratch) to its end
// and returns its log with the kubelet's timestamps, and how long it took
// from its creation to Succeeded.
func oneOff(ctx context.Context, cs kubernetes.Interface, ns, image, cluster, name string, command []string) (string, time.Duration, error) {
	never := false
	mode := int32(0o400)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: &never,
			Containers: []corev1.Container{{
				Name:            "bench",
				Image:           image,
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         command,
				Env: []corev1.EnvVar{{Name: "REDISCLI_AUTH", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: cluster + "-auth"}, Key: "password"}}}},
				VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "auth", MountPath: "/auth", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
					SizeLimit: resource.NewQuantity(8<<30, resource.BinarySI)}}},
				{Name: "auth", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: cluster + "-auth", DefaultMode: &mode,
					Items: []corev1.KeyToPath{{Key: "password", Path: "password"}}}}},
			},
		},
	}
	start := time.Now()
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return "", 0, err
	}
	defer func() {
		zero := int64(0)
		_ = cs.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	}()
	var end time.Duration
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "", 0, err
		}
		if p.Status.Phase == corev1.PodSucceeded {
			end = time.Since(start)
			break
		}
		if p.Status.Phase == corev1.PodFailed || time.Now().After(deadline) {
			raw, _ := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
			return "", 0, fmt.Errorf("pod %s %s: %s", name, p.Status.Phase, raw)
		}
	}
	raw, err := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{Timestamps: true}).DoRaw(ctx)
	return string(raw), end, err
}

// redisCLI runs `redis-cli --rdb` against the replica in a one-off pod and
// times it by the kubelet's log timestamps.
func redisCLI(ctx context.Context, cs kubernetes.Interface, ns, image, cluster, replica string, i int) (sample, error) {
	host, port, err := net.SplitHostPort(replica)
	if err != nil {
		return sample{}, err
	}
	raw, end, err := oneOff(ctx, cs, ns, image, cluster, fmt.Sprintf("rdb-cli-%d", i),
		[]string{"/usr/bin/redis-cli", "-h", host, "-p", port, "--rdb", "/scratch/dump.rdb"})
	if err != nil {
		return sample{}, err
	}
	var t0, t1 time.Time
	var n int64
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		ts, line, _ := strings.Cut(sc.Text(), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "SYNC sent"):
			t0 = at
		case strings.Contains(line, "Transfer finished"):
			t1 = at
			if m := cliBytes.FindStringSubmatch(line); m != nil {
				n, _ = strconv.ParseInt(m[1], 10, 64)
			}
		}
	}
	if t0.IsZero() || t1.IsZero() {
		return sample{}, errors.New("redis-cli said: " + strings.TrimSpace(raw))
	}
	if n == 0 {
		// Not diskless: the size came first ("writing N bytes").
		if m := cliBytes.FindStringSubmatch(raw); m != nil {
			n, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	return sample{bytes: n, transfer: t1.Sub(t0), endToEnd: end}, nil
}

// engineFile runs the backup engine (`redis-manager task snapshot`) in a
// one-off pod against the replica to a file:// target on an emptyDir: the
// engine without S3, as redis-cli runs, to tell the engine's cost from the
// S3 server's.
func engineFile(ctx context.Context, cs kubernetes.Interface, ns, image, cluster, replica string, i int) (sample, error) {
	raw, end, err := oneOff(ctx, cs, ns, image, cluster, fmt.Sprintf("engine-file-%d", i),
		[]string{"/usr/local/bin/redis-manager", "task", "snapshot", "--source", replica, "--target", "file:///scratch/t",
			"--key", "bench.rdb", "--password-file", "/auth/password"})
	if err != nil {
		return sample{}, err
	}
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		_, line, _ := strings.Cut(sc.Text(), " ")
		var l struct {
			Result *struct {
				Bytes      int64 `json:"bytes"`
				DurationMs int64 `json:"durationMs"`
			} `json:"result"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Result != nil {
			return sample{bytes: l.Result.Bytes, transfer: time.Duration(l.Result.DurationMs) * time.Millisecond, endToEnd: end}, nil
		}
	}
	return sample{}, errors.New("task snapshot said: " + strings.TrimSpace(raw))
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	storagelisters "k8s.io/client-go/listers/storage/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// DefaultName is the provisioner name of the node's StorageClass
// redis-manager-hostpath.
const DefaultName = "redis-manager.io/hostpath"

// Annotations the PV controller and the scheduler set on claims, and the one
// that marks a volume as ours (k8s.io/component-helpers/storage/volume).
const (
	annStorageProvisioner     = "volume.kubernetes.io/storage-provisioner"
	annBetaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
	annSelectedNode           = "volume.kubernetes.io/selected-node"
	annProvisionedBy          = "pv.kubernetes.io/provisioned-by"
)

// item is a unit of work: a claim (namespace/name) to provision for, or a
// volume (name) to reclaim.
type item struct {
	volume bool
	key    string
}

// Provisioner provisions hostPath volumes for the claims of its
// StorageClasses and deletes them when they are released.
type Provisioner struct {
	name, root, node string
	client           kubernetes.Interface
	factory          informers.SharedInformerFactory
	claims           corelisters.PersistentVolumeClaimLister
	volumes          corelisters.PersistentVolumeLister
	classes          storagelisters.StorageClassLister
	synced           []cache.InformerSynced
	queue            workqueue.TypedRateLimitingInterface[item]
	log              *slog.Logger
}

// New returns a provisioner named name keeping its volumes under root on
// node (the node affinity of volumes whose claim names no selected node).
func New(client kubernetes.Interface, name, root, node string, log *slog.Logger) *Provisioner {
	// No resync: every change comes as an event; a failed step is retried
	// by the rate-limited queue.
	f := informers.NewSharedInformerFactory(client, 0)
	claims := f.Core().V1().PersistentVolumeClaims()
	volumes := f.Core().V1().PersistentVolumes()
	classes := f.Storage().V1().StorageClasses()
	p := &Provisioner{
		name: name, root: filepath.Clean(root), node: node, client: client, factory: f,
		claims: claims.Lister(), volumes: volumes.Lister(), classes: classes.Lister(),
		synced: []cache.InformerSynced{claims.Informer().HasSynced, volumes.Informer().HasSynced, classes.Informer().HasSynced},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[item](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[item]{Name: "hostpath-provisioner"}),
		log: log,
	}
	enqueueClaim := func(obj any) {
		if c, ok := obj.(*v1.PersistentVolumeClaim); ok {
			p.queue.Add(item{key: c.Namespace + "/" + c.Name})
		}
	}
	enqueueVolume := func(obj any) {
		if v, ok := obj.(*v1.PersistentVolume); ok && v.Annotations[annProvisionedBy] == p.name {
			p.queue.Add(item{volume: true, key: v.Name})
		}
	}
	// A deleted claim needs nothing from us (the PV controller releases its
	// volume); a deleted volume neither.
	_, _ = claims.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueClaim,
		UpdateFunc: func(_, obj any) { enqueueClaim(obj) },
	})
	_, _ = volumes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueueVolume,
		UpdateFunc: func(_, obj any) { enqueueVolume(obj) },
	})
	return p
}

// Run starts the informers and workers and blocks until ctx ends.
func (p *Provisioner) Run(ctx context.Context, workers int) error {
	defer p.queue.ShutDown()
	eb := record.NewBroadcaster(record.WithContext(ctx))
	defer eb.Shutdown()
	eb.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: p.client.CoreV1().Events("")})
	rec := eb.NewRecorder(scheme.Scheme, v1.EventSource{Component: "redis-manager-hostpath-provisioner"})

	p.factory.Start(ctx.Done())
	defer p.factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), p.synced...) {
		return fmt.Errorf("informer caches did not sync: %w", ctx.Err())
	}
	p.log.Info("caches synced", "name", p.name)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for p.work(ctx, rec) {
			}
		})
	}
	<-ctx.Done()
	p.queue.ShutDown()
	wg.Wait()
	return nil
}

func (p *Provisioner) work(ctx context.Context, rec record.EventRecorder) bool {
	it, quit := p.queue.Get()
	if quit {
		return false
	}
	defer p.queue.Done(it)
	var err error
	if it.volume {
		err = p.syncVolume(ctx, it.key, rec)
	} else {
		err = p.syncClaim(ctx, it.key, rec)
	}
	if err != nil && ctx.Err() == nil {
		p.log.Warn("retrying", "volume", it.volume, "key", it.key, "err", err)
		p.queue.AddRateLimited(it)
		return true
	}
	p.queue.Forget(it)
	return true
}

// syncClaim makes the volume of a claim the PV controller handed to us.
func (p *Provisioner) syncClaim(ctx context.Context, key string, rec record.EventRecorder) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	claim, err := p.claims.PersistentVolumeClaims(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if !p.mine(claim) {
		return nil
	}
	class, err := p.classes.Get(*claim.Spec.StorageClassName)
	if err != nil {
		return fmt.Errorf("storage class %s of claim %s: %w", *claim.Spec.StorageClassName, key, err)
	}
	if class.Provisioner != p.name {
		return nil
	}
	node := p.node
	if class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
		// The scheduler names the node once a pod using the claim is
		// scheduled; the PV controller hands the claim over only then.
		if node = claim.Annotations[annSelectedNode]; node == "" {
			return nil
		}
	}
	pv, err := volumeFor(claim, class, node, p.root, p.name)
	if err != nil {
		rec.Event(claim, v1.EventTypeWarning, "ProvisioningFailed", err.Error())
		p.log.Warn("cannot provision", "claim", key, "err", err)
		return nil // the claim itself must change; its update requeues it
	}
	if _, err := p.volumes.Get(pv.Name); err == nil {
		return nil // made already; the PV controller binds it
	}
	dir := pv.Spec.HostPath.Path
	if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("claim %s: %w", key, err)
	}
	// world-writable whatever the umask: pods may run as any user
	if err := os.Chmod(dir, 0o777); err != nil {
		return fmt.Errorf("claim %s: %w", key, err)
	}
	if _, err := p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); apierrors.IsAlreadyExists(err) {
		return nil // made by an earlier sync the cache has not seen yet
	} else if err != nil {
		return fmt.Errorf("create volume %s for claim %s: %w", pv.Name, key, err)
	}
	p.log.Info("provisioned", "claim", key, "volume", pv.Name, "path", dir, "node", node,
		"capacity", pv.Spec.Capacity.Storage().String())
	rec.Eventf(claim, v1.EventTypeNormal, "ProvisioningSucceeded", "provisioned volume %s at %s on %s", pv.Name, dir, node)
	return nil
}

// mine: an unbound claim that the PV controller found no volume for and
// handed to this provisioner (it sets the storage-provisioner annotation,
// for WaitForFirstConsumer only after the scheduler chose a node).
func (p *Provisioner) mine(c *v1.PersistentVolumeClaim) bool {
	if c.Spec.VolumeName != "" || c.DeletionTimestamp != nil || c.Spec.StorageClassName == nil {
		return false
	}
	return c.Annotations[annStorageProvisioner] == p.name || c.Annotations[annBetaStorageProvisioner] == p.name
}

// syncVolume removes a released volume of ours whose reclaim policy is
// Delete: its directory first, then the PersistentVolume.
func (p *Provisioner) syncVolume(ctx context.Context, name string, rec record.EventRecorder) error {
	pv, err := p.volumes.Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if pv.Annotations[annProvisionedBy] != p.name || pv.Status.Phase != v1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != v1.PersistentVolumeReclaimDelete {
		return nil
	}
	dir, err := p.ownDir(pv)
	if err != nil {
		rec.Event(pv, v1.EventTypeWarning, "VolumeFailedDelete", err.Error())
		p.log.Error("not deleting", "volume", name, "err", err)
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete volume %s: %w", name, err)
	}
	if pv.DeletionTimestamp != nil {
		return nil // being deleted already (by us, or by someone while it was bound)
	}
	uid := pv.UID
	err = p.client.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("delete volume %s: %w", name, err)
	}
	p.log.Info("deleted", "volume", name, "path", dir)
	return nil
}

// ownDir is the volume's directory if it is one this provisioner made for
// the volume's claim: directly under the root, named after the claim
// (volumeFor); nothing else is ever removed.
func (p *Provisioner) ownDir(pv *v1.PersistentVolume) (string, error) {
	if pv.Spec.HostPath == nil || pv.Spec.ClaimRef == nil {
		return "", fmt.Errorf("volume %s has no hostPath or no claim", pv.Name)
	}
	r := pv.Spec.ClaimRef
	want := filepath.Join(p.root, r.Namespace+"-"+r.Name+"-"+string(r.UID))
	if dir := filepath.Clean(pv.Spec.HostPath.Path); dir != want || filepath.Dir(dir) != p.root {
		return "", fmt.Errorf("volume %s: path %s is not %s, the directory this provisioner makes for its claim", pv.Name, pv.Spec.HostPath.Path, want)
	}
	return want, nil
}

// volumeFor is the PersistentVolume for claim: a directory under root
// named <namespace>-<name>-<uid>, the claim's request as capacity (hostPath
// enforces no size), its access modes, the class's reclaim policy, pre-bound
// to the claim, on node. An error says why the claim cannot be served.
func volumeFor(claim *v1.PersistentVolumeClaim, class *storagev1.StorageClass, node, root, name string) (*v1.PersistentVolume, error) {
	if claim.Spec.VolumeMode != nil && *claim.Spec.VolumeMode == v1.PersistentVolumeBlock {
		return nil, errors.New("hostPath volumes are filesystems: volumeMode Block is not supported")
	}
	if claim.Spec.DataSource != nil || claim.Spec.DataSourceRef != nil {
		return nil, errors.New("hostPath volumes cannot be populated from a data source")
	}
	if claim.Spec.Selector != nil {
		return nil, errors.New("a claim with a selector cannot be provisioned dynamically")
	}
	size, ok := claim.Spec.Resources.Requests[v1.ResourceStorage]
	if !ok || size.Sign() <= 0 {
		return nil, errors.New("the claim requests no storage size")
	}
	if len(claim.Spec.AccessModes) == 0 {
		return nil, errors.New("the claim names no access mode")
	}
	if node == "" {
		return nil, errors.New("no node for the volume")
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	dirType := v1.HostPathDirectory // never DirectoryOrCreate: a lost directory must fail the pod, not give it an empty volume
	fs := v1.PersistentVolumeFilesystem
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "pvc-" + string(claim.UID),
			Annotations: map[string]string{annProvisionedBy: name},
		},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: size},
			AccessModes:                   append([]v1.PersistentVolumeAccessMode(nil), claim.Spec.AccessModes...),
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			VolumeMode:                    &fs,
			PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{
				Path: filepath.Join(root, claim.Namespace+"-"+claim.Name+"-"+string(claim.UID)),
				Type: &dirType,
			}},
			ClaimRef: &v1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID,
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{
					Key: "kubernetes.io/hostname", Operator: v1.NodeSelectorOpIn, Values: []string{node},
				}},
			}}}},
		},
	}, nil
}

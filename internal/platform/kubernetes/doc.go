// Package kubernetes is the Kubernetes platform: each shard a StatefulSet
// (pods <cluster>-<shard>-<ordinal> with a PersistentVolumeClaim each, a
// headless Service naming them, -master and -replicas Services for clients
// that do not speak Sentinel), the Sentinels a StatefulSet of their own
// (<cluster>-sentinel-<ordinal>, with the <cluster>-sentinel Service), the
// cluster's ConfigMap and Secret, every object owned by the ConfigMap.
// Instances are addressed by their pods' stable DNS names, never by pod
// IP; a pod's entrypoint (redis-manager instance run) decides its boot
// role, since the kubelet restarts containers without asking the manager.
// It watches pods, StatefulSets and EndpointSlices with informers.
package kubernetes

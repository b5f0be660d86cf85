// Package instance holds what runs next to one redis-server, right before
// it starts: the boot decision.
//
// A platform calls Decide every time it (re)starts a redis-server: the
// local platform in the manager before it execs the process, and, on
// Kubernetes, the pod's entrypoint (`redis-manager instance run`), because
// the kubelet restarts containers without asking the manager. The decision
// is the fence against booting a stale or empty master while Sentinel knows
// another one.
package instance

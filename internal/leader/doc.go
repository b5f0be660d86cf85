// Package leader elects one manager among several sharing a database: the
// leader runs the control loop, the job runner, the watchers, the scheduler
// and fast failover; every other manager is a standby that serves the API.
//
// The lease is a row in the store (store.Leases) whose expiry is decided by
// the database's clock. Its epoch, which increases at each takeover, is the
// fencing token: the leader's work runs under a context carrying a
// store.Fence, so a deposed leader's store writes are refused in their own
// transaction, and every action on Redis, Sentinel or the platform first
// passes Elector.Gate, which refuses once the leader's own deadline (a
// monotonic clock, shorter than the TTL) has passed without a renewal.
//
// With an Outer lock (a Kubernetes Lease, package kubelease) only the
// outer lock's holder campaigns for the store lease, taking it over at once
// with the next epoch, and Gate also refuses once the outer lock's own term
// (Outer.Until) has passed.
package leader

// Package topology holds the manager's decisions about a cluster's topology
// as pure functions of what was observed: the observation itself, the status
// and phase (Evaluate), the Sentinel majority (Majority), whether a shard is
// failing over (FailingOver), what the control loop heals (PlanHeal), which
// replica Sentinel would promote (SentinelChoice), which instances a spec
// adds or removes (PlanAdditions, PlanRemovals) and the online config
// changes of a new spec (ApplyUpdate, ConfigChanges).
//
// Nothing here does I/O: the controller observes and acts, this package
// decides, and its table tests need no process.
package topology

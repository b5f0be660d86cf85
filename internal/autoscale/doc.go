// Package autoscale is the autoscaler: a policy per cluster (Normalize
// checks it and fills in the defaults), the readings of one observe round
// (Read: per replica CPU, ops/s and clients from INFO, averaged per shard;
// each master's memory), the decision (Decide: pure, table-tested; target
// tracking with cooldowns and a stabilisation window for replicas, a step
// with hysteresis for maxmemory, held back by guard rails) and the Engine
// that runs it on the leader after each observe round, records every
// decision as an autoscale event and turns the ones it takes into ordinary
// scale jobs (through the service's UpdateCluster, so they are admitted,
// durable and resumable like a person's).
//
// Shards are not autoscaled: Sentinel shards do not move keys between
// them, so a new shard would start empty and a removed one would drop its
// keys (docs/autoscaling.md).
package autoscale

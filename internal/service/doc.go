// Package service is the API's use cases: what internal/server's
// Service interface calls. Each validates a request, checks admission
// (capacity, the job's lane), stores its intent (a cluster, a job, a
// backup record, a schedule) and wakes the job runner; it never starts,
// stops or reconfigures an instance. Every manager serves it, leader or
// standby: a standby only stores intent, which the leader carries out.
//
// It holds the store and three small interfaces declared here: Capacity
// (the platform's room, for admission), Live (what a spec change asks of
// the running cluster: is a shard failing over, what its master holds)
// and Runner (Kick); the controller implements Live and Runner. The jobs
// it stores are written in internal/jobspec's types, which the
// controller's job runner reads back.
package service

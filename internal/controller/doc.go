// Package controller is the leader's machinery: the job runner that
// carries out the jobs internal/service stores, step by step, and resumes
// them after a restart or a takeover; the control loop that observes every
// cluster (platform, Sentinel, INFO), records its status and heals it; the
// Sentinel watchers and fast failover; and the backup scheduler's firing.
// It implements service.Live and service.Runner for the API's use cases.
// What it decides from an observation is in internal/topology, what it
// knows of backup records in internal/catalog, the jobs' parameters in
// internal/jobspec, and every SENTINEL command it sends goes through
// internal/sentinel.
package controller

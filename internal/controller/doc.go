// Package controller is the manager's engine: the cluster service the API
// calls (validate, write intent, return a job), the job runner that carries
// jobs out step by step and resumes them after a restart, and the control
// loop that observes every cluster (platform, Sentinel, INFO) and records
// its status. What it decides from an observation is in internal/topology,
// what it knows of backup records in internal/catalog, and every SENTINEL
// command it sends goes through internal/sentinel.
package controller

// Package jobspec holds what a job is as stored: the parameters the API's
// use cases (internal/service) write into a job and the job runner
// (internal/controller) reads back, new job records and ids, the error the
// API shows as is, and storing a backup job, which both the API and the
// leader's scheduler do. Both packages import it; it imports neither, so
// the job's wire format has one definition and no import cycle.
package jobspec

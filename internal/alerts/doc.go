// Package alerts evaluates the alert rules against what the leader
// observes (each cluster's stored status, its backups and schedule), keeps
// each alert's state (pending → firing → resolved) in the store so that a
// new leader continues where the last one stopped, records every
// transition as an event and sends the firing and resolved ones to the
// configured webhooks (notify.go).
//
// rules.go holds the rules and their defaults, and Conditions, a pure
// function of one cluster's observation; step.go holds Step, the pure state
// machine; engine.go is the thin part that reads and writes the store.
package alerts

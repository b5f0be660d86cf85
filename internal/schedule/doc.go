// Package schedule reads backup schedules' cron expressions. It is pure:
// the API (internal/service) validates a schedule and shows its next slot
// with it, and the leader's scheduler (internal/controller/schedule.go)
// finds due slots with it.
package schedule

package alerts

import (
	"sort"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// KeepResolved is how long a resolved alert stays listed before it is
// removed.
const KeepResolved = time.Hour

// Change is one alert whose stored state must change.
type Change struct {
	Alert api.Alert
	// From is the state it left ("" for a new alert).
	From string
	// Delete: remove the stored alert (resolved long ago, or a pending
	// one whose condition ended before it fired).
	Delete bool
	// Notify: a transition to firing or to resolved from firing, which
	// webhooks hear of.
	Notify bool
}

// Step advances one cluster's alerts: prev are its stored alerts, conds the
// conditions that hold now. It is pure.
//
//	condition holds, no alert (or a resolved one) → pending (firing at once when for is 0)
//	pending for at least for                      → firing
//	firing, condition ended                       → resolved
//	pending, condition ended                      → removed, never notified
//	resolved for KeepResolved                     → removed
func Step(cluster string, prev []api.Alert, conds []Condition, settings map[string]Setting, severity func(string) string, now time.Time) []Change {
	byID := map[string]api.Alert{}
	for _, a := range prev {
		byID[store.AlertID(a)] = a
	}
	var out []Change
	active := map[string]bool{}
	for _, c := range conds {
		a := api.Alert{Rule: c.Rule, Cluster: cluster, Shard: c.Shard, Instance: c.Instance, Value: c.Value, Message: c.Message, Severity: severity(c.Rule)}
		id := store.AlertID(a)
		if active[id] {
			continue
		}
		active[id] = true
		old, ok := byID[id]
		forDur := settings[c.Rule].For
		switch {
		case !ok || old.State == api.AlertResolved:
			a.ActiveAt, a.Since, a.State = now, now, api.AlertPending
			from := ""
			if ok {
				from = old.State
			}
			if forDur <= 0 {
				a.State = api.AlertFiring
				out = append(out, Change{Alert: a, From: from, Notify: true})
			} else {
				out = append(out, Change{Alert: a, From: from})
			}
		case old.State == api.AlertPending && now.Sub(old.ActiveAt) >= forDur:
			a.ActiveAt, a.Since, a.State = old.ActiveAt, now, api.AlertFiring
			out = append(out, Change{Alert: a, From: api.AlertPending, Notify: true})
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		old := byID[id]
		if active[id] {
			continue
		}
		switch old.State {
		case api.AlertFiring:
			a := old
			a.State, a.Since = api.AlertResolved, now
			out = append(out, Change{Alert: a, From: api.AlertFiring, Notify: true})
		case api.AlertPending:
			out = append(out, Change{Alert: old, From: api.AlertPending, Delete: true})
		case api.AlertResolved:
			if now.Sub(old.Since) >= KeepResolved {
				out = append(out, Change{Alert: old, From: api.AlertResolved, Delete: true})
			}
		}
	}
	return out
}

// Silenced reports whether a silence in force matches the alert.
func Silenced(a api.Alert, silences []api.Silence, now time.Time) bool {
	for _, s := range silences {
		if !now.Before(s.EndsAt) {
			continue
		}
		if (s.Cluster == "" || s.Cluster == a.Cluster) && (s.Rule == "" || s.Rule == a.Rule) && (s.Instance == "" || s.Instance == a.Instance) {
			return true
		}
	}
	return false
}

// Severity is a rule's severity ("" for an unknown rule).
func Severity(rule string) string {
	r, _ := ruleByName(rule)
	return r.Severity
}

package autoscale

import (
	"fmt"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Actions a decision takes.
const (
	ScaleOut   = "scale-out"   // one more replica in every shard
	ScaleIn    = "scale-in"    // one replica fewer in every shard
	MemoryUp   = "memory-up"   // raise maxmemory by a step
	MemoryDown = "memory-down" // lower maxmemory by a step
)

// Input is what one decision reads.
type Input struct {
	Now      time.Time
	Policy   api.AutoscalePolicy // normalized
	Spec     api.ClusterSpec
	Readings api.AutoscaleReadings
	State    api.AutoscaleState
	// Guards hold back every change; ReplicaGuards only an added replica
	// (memory for its sync, the backlog).
	Guards        []Guard
	ReplicaGuards []Guard
}

// Decision is what a round wants: nothing (Action ""), a change, or a
// change held back by Guard.
type Decision struct {
	Action string
	Reason string
	// Hold, when set, is why the change is not made this round.
	Hold *Guard
	// From and To are the replicas per shard (scale-out, scale-in) or
	// maxmemory in bytes (memory-up, memory-down).
	From, To int64
}

// Request is the spec change the decision makes.
func (d Decision) Request() api.UpdateClusterRequest {
	switch d.Action {
	case ScaleOut, ScaleIn:
		n := int(d.To)
		return api.UpdateClusterRequest{Replicas: &n}
	case MemoryUp, MemoryDown:
		s := FormatSize(d.To)
		return api.UpdateClusterRequest{Maxmemory: &s}
	}
	return api.UpdateClusterRequest{}
}

// FormatSize writes bytes as Redis reads them: whole megabytes as "Nmb",
// anything else in bytes.
func FormatSize(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%dmb", n>>20)
	}
	return fmt.Sprintf("%d", n)
}

// Decide updates the state's "since" marks from the readings and returns
// the one change this round wants, if any. Memory comes first (evictions
// lose data; a missing replica only costs latency). It is pure: the
// engine records the decision, acts on it and, when it acted (or would
// have, in a dry run), calls Taken.
func Decide(in Input) (Decision, api.AutoscaleState) {
	st := in.State
	st.Readings = &in.Readings
	p := in.Policy
	var d Decision
	if p.Memory != nil {
		d, st = decideMemory(in, st)
	}
	if d.Action == "" && p.Replicas != nil {
		d, st = decideReplicas(in, st)
	}
	if d.Action != "" && d.Hold == nil {
		guards := in.Guards
		if d.Action == ScaleOut {
			guards = append(append([]Guard(nil), guards...), in.ReplicaGuards...)
		}
		if len(guards) > 0 {
			g := guards[0]
			d.Hold = &g
		}
	}
	return d, st
}

func since(t *time.Time, holds bool, now time.Time) *time.Time {
	if !holds {
		return nil
	}
	if t != nil {
		return t
	}
	n := now
	return &n
}

func held(t *time.Time, now time.Time, d time.Duration) bool { return t != nil && now.Sub(*t) >= d }

func within(t *time.Time, now time.Time, d time.Duration) bool { return t != nil && now.Sub(*t) < d }

func decideMemory(in Input, st api.AutoscaleState) (Decision, api.AutoscaleState) {
	m, now, p := in.Policy.Memory, in.Now, in.Policy
	var cur, used int64
	high, low := false, *m.LowPercent > 0
	seen := false
	for _, s := range in.Readings.Shards {
		if s.MaxmemoryBytes <= 0 {
			continue
		}
		seen = true
		cur = max(cur, s.MaxmemoryBytes)
		used = max(used, s.UsedMemoryBytes)
		if s.MemoryPercent >= *m.HighPercent {
			high = true
		}
		if s.MemoryPercent >= *m.LowPercent {
			low = false
		}
	}
	if !seen {
		st.MemoryHighSince, st.MemoryLowSince = nil, nil
		return Decision{}, st
	}
	// The spec is what the next job starts from; an instance that has not
	// applied it yet reads older.
	if specMax, err := spec.ParseSize(in.Spec.Maxmemory); err == nil && specMax > 0 {
		cur = specMax
	}
	st.MemoryHighSince = since(st.MemoryHighSince, high, now)
	st.MemoryLowSince = since(st.MemoryLowSince, low, now)
	ceiling, _ := spec.ParseSize(m.Max)
	floor, _ := spec.ParseSize(m.Min)
	if held(st.MemoryHighSince, now, ms(m.ForMs)) {
		to := min(int64(float64(cur)*(1+*m.StepPercent/100)), ceiling)
		to = roundMB(to, ceiling)
		d := Decision{Action: MemoryUp, From: cur, To: to,
			Reason: fmt.Sprintf("used_memory at or above %g %% of maxmemory for %s (highest %d of %d bytes)", *m.HighPercent, now.Sub(*st.MemoryHighSince).Round(time.Second), used, cur)}
		switch {
		case float64(to-cur) < float64(cur)*MinStepPercent/100:
			d.Hold = &Guard{GuardLimit, fmt.Sprintf("maxmemory %d is at (or within %g %% of) memory.max %s", cur, MinStepPercent, m.Max)}
		case within(st.LastMemoryUpAt, now, ms(p.ScaleOutCooldownMs)):
			d.Hold = &Guard{GuardCooldown, fmt.Sprintf("maxmemory was raised %s ago; scale-out cooldown %s", now.Sub(*st.LastMemoryUpAt).Round(time.Second), ms(p.ScaleOutCooldownMs))}
		}
		return d, st
	}
	if low && held(st.MemoryLowSince, now, ms(p.StabilizationMs)) {
		to := int64(float64(cur) / (1 + *m.StepPercent/100))
		need := int64(float64(used) * (1 + *m.HeadroomPercent/100))
		to = max(to, need, floor)
		to = roundMB(to, cur)
		if float64(cur-to) < float64(cur)*MinStepPercent/100 {
			// Already as low as the headroom or the floor allow: nothing
			// to decide.
			return Decision{}, st
		}
		d := Decision{Action: MemoryDown, From: cur, To: to,
			Reason: fmt.Sprintf("used_memory below %g %% of maxmemory for %s (highest %d of %d bytes); keeping %g %% headroom", *m.LowPercent, now.Sub(*st.MemoryLowSince).Round(time.Second), used, cur, *m.HeadroomPercent)}
		if last := latest(st.LastMemoryUpAt, st.LastMemoryDownAt); within(last, now, ms(p.ScaleInCooldownMs)) {
			d.Hold = &Guard{GuardCooldown, fmt.Sprintf("maxmemory changed %s ago; scale-in cooldown %s", now.Sub(*last).Round(time.Second), ms(p.ScaleInCooldownMs))}
		}
		return d, st
	}
	return Decision{}, st
}

// roundMB rounds up to whole megabytes, not past limit.
func roundMB(n, limit int64) int64 {
	r := (n + 1<<20 - 1) / (1 << 20) * (1 << 20)
	if r > limit {
		return max(n, limit)
	}
	return r
}

func latest(ts ...*time.Time) *time.Time {
	var out *time.Time
	for _, t := range ts {
		if t != nil && (out == nil || t.After(*out)) {
			out = t
		}
	}
	return out
}

func decideReplicas(in Input, st api.AutoscaleState) (Decision, api.AutoscaleState) {
	r, now, p := in.Policy.Replicas, in.Now, in.Policy
	cur := int64(in.Spec.Replicas)
	if len(in.Readings.Shards) == 0 {
		st.AboveSince, st.BelowSince = nil, nil
		return Decision{}, st
	}
	signal := in.Readings.Signal
	unread := in.Readings.Unread
	if unread == "" {
		st.AboveSince = since(st.AboveSince, signal > r.Target, now)
		st.BelowSince = since(st.BelowSince, signal < ScaleInShare*r.Target, now)
	}
	outCooling := within(st.LastScaleOutAt, now, ms(p.ScaleOutCooldownMs))
	last := latest(st.LastScaleOutAt, st.LastScaleInAt)
	inCooling := within(last, now, ms(p.ScaleInCooldownMs))
	switch {
	case cur < int64(r.Min):
		d := Decision{Action: ScaleOut, From: cur, To: cur + 1, Reason: fmt.Sprintf("%d replicas per shard, below replicas.min %d", cur, r.Min)}
		if outCooling {
			d.Hold = &Guard{GuardCooldown, fmt.Sprintf("a replica was added %s ago; scale-out cooldown %s", now.Sub(*st.LastScaleOutAt).Round(time.Second), ms(p.ScaleOutCooldownMs))}
		}
		return d, st
	case cur > int64(r.Max):
		d := Decision{Action: ScaleIn, From: cur, To: cur - 1, Reason: fmt.Sprintf("%d replicas per shard, above replicas.max %d", cur, r.Max)}
		if inCooling {
			d.Hold = &Guard{GuardCooldown, fmt.Sprintf("the replicas changed %s ago; scale-in cooldown %s", now.Sub(*last).Round(time.Second), ms(p.ScaleInCooldownMs))}
		}
		return d, st
	case unread != "":
		// No reading this round: the marks stay as they were, and a
		// change whose window has run waits for a reading rather than
		// being made on a zero.
		var d Decision
		switch {
		case held(st.AboveSince, now, ms(p.ScaleOutAfterMs)) && cur < int64(r.Max):
			d = Decision{Action: ScaleOut, From: cur, To: cur + 1, Reason: fmt.Sprintf("%s per replica above the target %g since %s", r.Metric, r.Target, st.AboveSince.Format(time.RFC3339))}
		case held(st.BelowSince, now, ms(p.StabilizationMs)) && cur > int64(r.Min):
			d = Decision{Action: ScaleIn, From: cur, To: cur - 1, Reason: fmt.Sprintf("%s per replica below %g (75 %% of the target %g) since %s", r.Metric, ScaleInShare*r.Target, r.Target, st.BelowSince.Format(time.RFC3339))}
		default:
			return Decision{}, st
		}
		d.Hold = &Guard{GuardUnknown, unread}
		return d, st
	case held(st.AboveSince, now, ms(p.ScaleOutAfterMs)):
		d := Decision{Action: ScaleOut, From: cur, To: cur + 1,
			Reason: fmt.Sprintf("%s per replica %g above the target %g for %s", r.Metric, signal, r.Target, now.Sub(*st.AboveSince).Round(time.Second))}
		switch {
		case cur >= int64(r.Max):
			d.Hold = &Guard{GuardLimit, fmt.Sprintf("already at replicas.max %d", r.Max)}
		case outCooling:
			d.Hold = &Guard{GuardCooldown, fmt.Sprintf("a replica was added %s ago; scale-out cooldown %s", now.Sub(*st.LastScaleOutAt).Round(time.Second), ms(p.ScaleOutCooldownMs))}
		}
		return d, st
	case held(st.BelowSince, now, ms(p.StabilizationMs)) && cur > int64(r.Min):
		d := Decision{Action: ScaleIn, From: cur, To: cur - 1,
			Reason: fmt.Sprintf("%s per replica %g below %g (75 %% of the target %g) for %s", r.Metric, signal, ScaleInShare*r.Target, r.Target, now.Sub(*st.BelowSince).Round(time.Second))}
		if inCooling {
			d.Hold = &Guard{GuardCooldown, fmt.Sprintf("the replicas changed %s ago; scale-in cooldown %s", now.Sub(*last).Round(time.Second), ms(p.ScaleInCooldownMs))}
		}
		return d, st
	}
	return Decision{}, st
}

// Taken records in the state that the decision was carried out (or
// decided in a dry run) at now: its cooldown starts, and the signal must
// hold for a full window again before the next change of its kind.
func Taken(st api.AutoscaleState, d Decision, now time.Time, job string) api.AutoscaleState {
	t := now
	switch d.Action {
	case ScaleOut:
		st.LastScaleOutAt, st.AboveSince, st.BelowSince = &t, nil, nil
	case ScaleIn:
		st.LastScaleInAt, st.AboveSince, st.BelowSince = &t, nil, nil
	case MemoryUp:
		st.LastMemoryUpAt, st.MemoryHighSince, st.MemoryLowSince = &t, nil, nil
	case MemoryDown:
		st.LastMemoryDownAt, st.MemoryHighSince, st.MemoryLowSince = &t, nil, nil
	}
	if job != "" {
		st.LastJob = job
	}
	st.LastHold = ""
	return st
}

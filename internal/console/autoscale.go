package console

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// AutoscaleSource is what the cluster page reads of autoscaling: the
// policy, the engine's state and the autoscale events (store.Autoscaling
// has them all).
type AutoscaleSource interface {
	GetAutoscalePolicy(ctx context.Context, cluster string) (api.AutoscalePolicy, error)
	GetAutoscaleState(ctx context.Context, cluster string) (api.AutoscaleState, error)
	ListEventsOfType(ctx context.Context, cluster, typ string, limit int) ([]api.Event, error)
}

// decisionsShown is how many of the newest decisions the cluster page
// lists (as many as GET …/autoscaling shows).
const decisionsShown = 20

// autoscaleView is the cluster page's autoscaling card and form.
type autoscaleView struct {
	// Policy is nil when the cluster has none.
	Policy *api.AutoscalePolicy
	State  api.AutoscaleState
	// LastChange is the newest of the engine's changes.
	LastChange *time.Time
	// Cooldowns are the cooldowns running now, as the engine applies
	// them.
	Cooldowns []cooldownView
	// Windows are the running "for how long" marks with their progress.
	Windows   []windowView
	Decisions []decisionView
	Form      autoscaleForm
}

// cooldownView is one running cooldown: What may not happen before Until.
type cooldownView struct {
	What  string
	Until time.Time
}

// windowView is one running window: the signal has held since Since and
// must hold for Of.
type windowView struct {
	What    string
	Since   time.Time
	Of      time.Duration
	Percent int // 0–100
}

// decisionView is one autoscale event.
type decisionView struct {
	Event                        api.Event
	Action, Outcome, Reason, Job string
	Guard, GuardMessage          string
	Readings                     string
}

// autoscaleForm holds the form's starting values: the policy's, or the
// documented defaults for a cluster without one.
type autoscaleForm struct {
	Replicas, Memory                                  bool
	Min, Max, Metric, Target                          string
	MemMax, High, Step, MemFor, Low, MemMin, Headroom string
	OutAfter, OutCooldown, InCooldown, Stab, FoWindow string
	DryRun                                            bool
	Metrics                                           []string
}

func (c *console) autoscaling(ctx context.Context, cl api.Cluster) (*autoscaleView, error) {
	src := c.cfg.Autoscaling
	if src == nil {
		return nil, nil
	}
	v := &autoscaleView{}
	p, err := src.GetAutoscalePolicy(ctx, cl.Name)
	switch {
	case err == nil:
		v.Policy = &p
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if v.State, err = src.GetAutoscaleState(ctx, cl.Name); err != nil {
		return nil, err
	}
	evs, err := src.ListEventsOfType(ctx, cl.Name, api.EventAutoscale, decisionsShown)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	for _, e := range evs {
		v.Decisions = append(v.Decisions, decisionOf(e))
	}
	v.Form = formOf(v.Policy, cl)
	if v.Policy == nil {
		return v, nil
	}
	st, now := v.State, time.Now()
	v.LastChange = latestOf(st.LastScaleOutAt, st.LastScaleInAt, st.LastMemoryUpAt, st.LastMemoryDownAt)
	// As decide.go applies them: a scale-out (raise) waits out the
	// scale-out cooldown after the last one; a scale-in (lowering) the
	// scale-in cooldown after any change of its kind.
	cooldown := func(what string, from *time.Time, ms *int64) {
		if from == nil || ms == nil {
			return
		}
		if until := from.Add(time.Duration(*ms) * time.Millisecond); until.After(now) {
			v.Cooldowns = append(v.Cooldowns, cooldownView{What: what, Until: until})
		}
	}
	if p.Replicas != nil {
		cooldown("scale-out", st.LastScaleOutAt, p.ScaleOutCooldownMs)
		cooldown("scale-in", latestOf(st.LastScaleOutAt, st.LastScaleInAt), p.ScaleInCooldownMs)
	}
	if p.Memory != nil {
		cooldown("memory raise", st.LastMemoryUpAt, p.ScaleOutCooldownMs)
		cooldown("memory lowering", latestOf(st.LastMemoryUpAt, st.LastMemoryDownAt), p.ScaleInCooldownMs)
	}
	window := func(what string, since *time.Time, of *int64) {
		if since == nil || of == nil {
			return
		}
		d := time.Duration(*of) * time.Millisecond
		pct := 100
		if d > 0 {
			pct = int(min(100, now.Sub(*since)*100/d))
		}
		v.Windows = append(v.Windows, windowView{What: what, Since: *since, Of: d, Percent: max(pct, 0)})
	}
	if p.Replicas != nil {
		window("above the target (scale-out)", st.AboveSince, p.ScaleOutAfterMs)
		window("below 75 % of the target (stabilisation before scale-in)", st.BelowSince, p.StabilizationMs)
	}
	if p.Memory != nil {
		window("memory above highPercent (raise)", st.MemoryHighSince, p.Memory.ForMs)
		window("memory below lowPercent (stabilisation before lowering)", st.MemoryLowSince, p.StabilizationMs)
	}
	return v, nil
}

func latestOf(ts ...*time.Time) *time.Time {
	var out *time.Time
	for _, t := range ts {
		if t != nil && (out == nil || t.After(*out)) {
			out = t
		}
	}
	return out
}

// decisionOf reads an autoscale event's details (docs/autoscaling.md,
// "Events").
func decisionOf(e api.Event) decisionView {
	str := func(k string) string {
		if s, ok := e.Details[k].(string); ok {
			return s
		}
		return ""
	}
	d := decisionView{Event: e, Action: str("action"), Outcome: str("outcome"), Reason: str("reason"), Job: str("job"),
		Guard: str("guard"), GuardMessage: str("guardMessage")}
	if r, ok := e.Details["readings"].(map[string]any); ok {
		d.Readings = readingsText(r)
	}
	return d
}

// readingsText sums up a decision's readings: the signal against the
// target, the replicas, the highest memory share.
func readingsText(r map[string]any) string {
	num := func(m map[string]any, k string) float64 {
		f, _ := m[k].(float64)
		return f
	}
	out := ""
	if metric, _ := r["metric"].(string); metric != "" {
		out = fmt.Sprintf("%s %s (target %s)", metric, strconv.FormatFloat(num(r, "signal"), 'f', -1, 64), strconv.FormatFloat(num(r, "target"), 'f', -1, 64))
	}
	out += fmt.Sprintf("; %d replicas per shard", int(num(r, "replicas")))
	var memPct float64
	var used, maxm int64
	if shards, ok := r["shards"].([]any); ok {
		for _, s := range shards {
			if sm, ok := s.(map[string]any); ok && num(sm, "memoryPercent") >= memPct {
				memPct, used, maxm = num(sm, "memoryPercent"), int64(num(sm, "usedMemoryBytes")), int64(num(sm, "maxmemoryBytes"))
			}
		}
	}
	if maxm > 0 {
		out += fmt.Sprintf("; memory %s of %s (%s %%)", humanBytes(used), humanBytes(maxm), strconv.FormatFloat(memPct, 'f', -1, 64))
	}
	return out
}

func formOf(p *api.AutoscalePolicy, cl api.Cluster) autoscaleForm {
	f := autoscaleForm{Replicas: true, Min: strconv.Itoa(cl.Spec.Replicas), Max: strconv.Itoa(max(cl.Spec.Replicas, 1) + 2),
		Metric: api.MetricCPU, Target: "60", Metrics: []string{api.MetricCPU, api.MetricOps, api.MetricClients}}
	if p == nil {
		return f
	}
	i64 := func(v *int64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatInt(*v, 10)
	}
	flt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'f', -1, 64)
	}
	f.Replicas = p.Replicas != nil
	if r := p.Replicas; r != nil {
		f.Min, f.Max, f.Metric, f.Target = strconv.Itoa(r.Min), strconv.Itoa(r.Max), r.Metric, strconv.FormatFloat(r.Target, 'f', -1, 64)
	}
	f.Memory = p.Memory != nil
	if m := p.Memory; m != nil {
		f.MemMax, f.High, f.Step, f.MemFor, f.Low, f.MemMin, f.Headroom = m.Max, flt(m.HighPercent), flt(m.StepPercent), i64(m.ForMs), flt(m.LowPercent), m.Min, flt(m.HeadroomPercent)
	}
	f.OutAfter, f.OutCooldown, f.InCooldown, f.Stab, f.FoWindow = i64(p.ScaleOutAfterMs), i64(p.ScaleOutCooldownMs), i64(p.ScaleInCooldownMs), i64(p.StabilizationMs), i64(p.FailoverWindowMs)
	f.DryRun = p.DryRun
	return f
}

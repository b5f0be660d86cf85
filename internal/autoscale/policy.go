package autoscale

import (
	"fmt"
	"math"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
)

// Defaults of a policy (docs/autoscaling.md): ElastiCache's cooldowns and
// 75 % scale-in rule, KubeDB's 50 % memory step at a share used.
const (
	DefaultScaleOutCooldown = 3 * time.Minute
	DefaultScaleInCooldown  = 10 * time.Minute
	DefaultStabilization    = 15 * time.Minute
	DefaultScaleOutAfter    = time.Minute
	DefaultFailoverWindow   = 10 * time.Minute
	DefaultHighPercent      = 80.0
	DefaultStepPercent      = 50.0
	DefaultMemoryFor        = 30 * time.Second
	DefaultHeadroomPercent  = 50.0

	// MaxReplicas bounds replicas.max: every replica is a full copy
	// whose initial sync the master pays for.
	MaxReplicas = 16
	// ScaleInShare: scale in only once the signal is below this share
	// of the target.
	ScaleInShare = 0.75
	// MinStepPercent: memory changes smaller than this are not worth a
	// job (KubeDB ignores changes under 10 %).
	MinStepPercent = 10.0
	maxDuration    = 24 * time.Hour
)

func invalid(field, format string, a ...any) error {
	return &spec.FieldError{Kind: spec.Invalid, Field: field, Message: fmt.Sprintf(format, a...)}
}

// Normalize checks a policy against the cluster's spec and returns it with
// every default filled in. Errors are *spec.FieldError naming the field
// (Invalid: 400; Unprocessable: 422, a valid policy this cluster cannot
// follow).
func Normalize(p api.AutoscalePolicy, cs api.ClusterSpec) (api.AutoscalePolicy, error) {
	if p.Replicas == nil && p.Memory == nil {
		return p, invalid("", "give replicas, memory or both (DELETE turns autoscaling off)")
	}
	if r := p.Replicas; r != nil {
		r2 := *r
		switch {
		case r.Min < 0:
			return p, invalid("replicas.min", "must be 0 or more")
		case r.Max < 1 || r.Max > MaxReplicas:
			return p, invalid("replicas.max", "must be from 1 to %d", MaxReplicas)
		case r.Min > r.Max:
			return p, invalid("replicas.min", "min (%d) is above max (%d)", r.Min, r.Max)
		}
		switch r.Metric {
		case api.MetricCPU, api.MetricOps, api.MetricClients:
		case "":
			return p, invalid("replicas.metric", "is required: cpu, ops or clients")
		default:
			return p, invalid("replicas.metric", "%q is not one of cpu, ops, clients", r.Metric)
		}
		switch {
		case math.IsNaN(r.Target) || math.IsInf(r.Target, 0) || r.Target <= 0:
			return p, invalid("replicas.target", "must be above 0")
		case r.Metric == api.MetricCPU && r.Target > 100:
			return p, invalid("replicas.target", "cpu is a percentage of one core (Redis runs commands on one thread): at most 100")
		}
		p.Replicas = &r2
	}
	var err error
	dur := func(field string, v **int64, def time.Duration) {
		if err != nil {
			return
		}
		if *v == nil {
			ms := def.Milliseconds()
			*v = &ms
			return
		}
		if **v < 0 || **v > maxDuration.Milliseconds() {
			err = invalid(field, "must be from 0 to %d (a day)", maxDuration.Milliseconds())
		}
		x := **v
		*v = &x
	}
	dur("scaleOutCooldownMs", &p.ScaleOutCooldownMs, DefaultScaleOutCooldown)
	dur("scaleInCooldownMs", &p.ScaleInCooldownMs, DefaultScaleInCooldown)
	dur("stabilizationMs", &p.StabilizationMs, DefaultStabilization)
	dur("scaleOutAfterMs", &p.ScaleOutAfterMs, DefaultScaleOutAfter)
	dur("failoverWindowMs", &p.FailoverWindowMs, DefaultFailoverWindow)
	if err != nil {
		return p, err
	}
	if m := p.Memory; m != nil {
		m2 := *m
		pct := func(field string, v **float64, def, lo, hi float64) {
			if err != nil {
				return
			}
			if *v == nil {
				d := def
				*v = &d
				return
			}
			if x := **v; math.IsNaN(x) || x < lo || x > hi {
				err = invalid(field, "must be from %g to %g", lo, hi)
			}
			x := **v
			*v = &x
		}
		pct("memory.highPercent", &m2.HighPercent, DefaultHighPercent, 1, 99)
		pct("memory.stepPercent", &m2.StepPercent, DefaultStepPercent, MinStepPercent, 1000)
		pct("memory.lowPercent", &m2.LowPercent, 0, 0, 99)
		pct("memory.headroomPercent", &m2.HeadroomPercent, DefaultHeadroomPercent, 0, 1000)
		dur("memory.forMs", &m2.ForMs, DefaultMemoryFor)
		if err != nil {
			return p, err
		}
		cur, cerr := spec.ParseSize(cs.Maxmemory)
		if cs.Maxmemory == "" || cerr != nil || cur == 0 {
			return p, &spec.FieldError{Kind: spec.Unprocessable, Field: "memory", Message: "the cluster has no maxmemory to raise; set one first (PATCH maxmemory)"}
		}
		if m2.Max == "" {
			return p, invalid("memory.max", "is required: the ceiling maxmemory is never raised above, such as 8gb")
		}
		ceiling, perr := spec.ParseSize(m2.Max)
		if perr != nil {
			return p, invalid("memory.max", "%v", perr)
		}
		if ceiling < cur {
			return p, invalid("memory.max", "%s (%d bytes) is below the cluster's maxmemory %s (%d bytes)", m2.Max, ceiling, cs.Maxmemory, cur)
		}
		if m2.Min == "" {
			m2.Min = cs.Maxmemory
		}
		floor, perr := spec.ParseSize(m2.Min)
		switch {
		case perr != nil:
			return p, invalid("memory.min", "%v", perr)
		case floor <= 0:
			return p, invalid("memory.min", "must be above 0")
		case floor > ceiling:
			return p, invalid("memory.min", "%s is above memory.max %s", m2.Min, m2.Max)
		}
		// After a lowering by one step the share used rises by the step;
		// it must stay below highPercent or the next round raises again.
		if low := *m2.LowPercent; low > 0 && low*(1+*m2.StepPercent/100) >= *m2.HighPercent {
			return p, invalid("memory.lowPercent", "%g %% raised by one step (%g %%) reaches highPercent (%g %%): lowering would be undone at once; use a lower lowPercent", low, *m2.StepPercent, *m2.HighPercent)
		}
		p.Memory = &m2
	}
	return p, nil
}

func ms(p *int64) time.Duration { return time.Duration(*p) * time.Millisecond }

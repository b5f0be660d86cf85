package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/schedule"
	"github.com/redis-manager/redis-manager/internal/store"
)

// EngineStore is what the engine needs of the store.
type EngineStore interface {
	ListAlerts(ctx context.Context) ([]api.Alert, error)
	PutAlert(ctx context.Context, a api.Alert, notify ...store.Outgoing) error
	DeleteAlert(ctx context.Context, a api.Alert) error
	GetAlertRules(ctx context.Context, cluster string) (api.AlertRules, error)
	ListSilences(ctx context.Context, now time.Time) ([]api.Silence, error)
	ListBackups(ctx context.Context, cluster string) ([]store.Backup, error)
	GetBackupSchedule(ctx context.Context, cluster string) (store.BackupSchedule, error)
	AddEvent(ctx context.Context, e api.Event) error
	ListEvents(ctx context.Context, cluster string, limit int) ([]api.Event, error)
}

// Sender is where notifications go (the Notifier): Outgoing makes the
// notifications of a transition, which the engine stores with the alert's
// state in one transaction; Wake tells the sender some were queued.
type Sender interface {
	Outgoing(ctx context.Context, a api.Alert) ([]store.Outgoing, error)
	Wake()
}

// Engine evaluates the rules after each observe round of the leader.
type Engine struct {
	store EngineStore
	send  Sender
	log   *slog.Logger
	now   func() time.Time
}

// NewEngine returns an engine; send may be nil (no notifications).
func NewEngine(st EngineStore, send Sender, log *slog.Logger) *Engine {
	return &Engine{store: st, send: send, log: log, now: func() time.Time { return time.Now().UTC() }}
}

// Cluster is one cluster as the leader just observed it.
type Cluster struct {
	Name   string
	Spec   api.ClusterSpec
	Status api.ClusterStatus
}

// Evaluate runs every rule on the clusters (all the stored ones: alerts of
// a cluster not among them resolve) and stores, records and sends the
// transitions. ctx carries the leader's fence, so a deposed leader writes
// nothing.
func (e *Engine) Evaluate(ctx context.Context, clusters []Cluster) error {
	now := e.now()
	stored, err := e.store.ListAlerts(ctx)
	if err != nil {
		return err
	}
	silences, err := e.store.ListSilences(ctx, now)
	if err != nil {
		return err
	}
	prev := map[string][]api.Alert{}
	for _, a := range stored {
		prev[a.Cluster] = append(prev[a.Cluster], a)
	}
	var errs []error
	for _, cl := range clusters {
		changes, err := e.cluster(ctx, cl, prev[cl.Name], now)
		delete(prev, cl.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("alerts of cluster %q: %w", cl.Name, err))
			continue
		}
		errs = append(errs, e.apply(ctx, changes, silences, now))
	}
	// Clusters gone: their alerts resolve.
	for name, alerts := range prev {
		errs = append(errs, e.apply(ctx, Step(name, alerts, nil, nil, Severity, now), silences, now))
	}
	return errors.Join(errs...)
}

func (e *Engine) cluster(ctx context.Context, cl Cluster, prev []api.Alert, now time.Time) ([]Change, error) {
	switch cl.Status.Phase {
	case api.PhaseCreating, api.PhaseDeleting, "":
		// Instances come and go on purpose (or nothing was observed yet):
		// states stay as they are.
		return nil, nil
	}
	overrides, err := e.store.GetAlertRules(ctx, cl.Name)
	if err != nil {
		return nil, err
	}
	settings := Effective(overrides)
	in := Input{Cluster: cl.Name, Spec: cl.Spec, Status: cl.Status, Now: now}
	if settings["backup-failed"].Enabled || settings["backup-missing"].Enabled {
		backups, err := e.store.ListBackups(ctx, cl.Name)
		if err != nil {
			return nil, err
		}
		for _, b := range backups {
			in.Backups = append(in.Backups, b.Backup)
		}
		sch, err := e.store.GetBackupSchedule(ctx, cl.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			if p := schedule.Period(sch.Cron, now); p > 0 {
				in.Schedule, in.ScheduleCreated, in.Period = sch.Cron, sch.UpdatedAt, p
			}
		}
	}
	if settings["failover"].Enabled {
		evs, err := e.store.ListEvents(ctx, cl.Name, 50)
		if err != nil {
			return nil, err
		}
		in.Events = evs
	}
	return Step(cl.Name, prev, Conditions(in, settings), settings, Severity, now), nil
}

// apply stores each change, records it as an event and sends the
// notifications that are not silenced.
func (e *Engine) apply(ctx context.Context, changes []Change, silences []api.Silence, now time.Time) error {
	var errs []error
	for _, c := range changes {
		a := c.Alert
		if c.Delete {
			if err := e.store.DeleteAlert(ctx, a); err != nil {
				errs = append(errs, err)
				continue
			}
			continue
		}
		a.Silenced = Silenced(a, silences, now)
		var notify []store.Outgoing
		if c.Notify && !a.Silenced && e.send != nil {
			var err error
			if notify, err = e.send.Outgoing(ctx, a); err != nil {
				// Nothing stored: the next round makes the same
				// transition and tries again.
				errs = append(errs, err)
				continue
			}
		}
		if err := e.store.PutAlert(ctx, a, notify...); err != nil {
			// Neither the state nor its notifications are stored: the
			// next round tries the same transition again, so a
			// notification is queued exactly when its state is.
			errs = append(errs, err)
			continue
		}
		// Events are the firing and resolved transitions: a pending alert
		// that ends before it fires is what for filters out. The failover
		// alert repeats the failover event, which is in the log already.
		if a.State != api.AlertPending && a.Rule != "failover" {
			e.event(ctx, a, fmt.Sprintf("alert %s %s: %s", a.Rule, a.State, a.Message), a.State, c.From)
		}
		e.log.Info("alert", "rule", a.Rule, "cluster", a.Cluster, "instance", a.Instance, "state", a.State, "from", c.From, "silenced", a.Silenced, "notifications", len(notify))
		if len(notify) > 0 {
			e.send.Wake()
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) event(ctx context.Context, a api.Alert, msg, state, from string) {
	details := map[string]any{"rule": a.Rule, "state": state, "value": a.Value, "severity": a.Severity}
	if from != "" {
		details["from"] = from
	}
	if a.Instance != "" {
		details["instance"] = a.Instance
	}
	if a.Silenced {
		details["silenced"] = true
	}
	if err := e.store.AddEvent(ctx, api.Event{Cluster: a.Cluster, Shard: a.Shard, Type: api.EventAlert, Message: msg, Details: details}); err != nil && ctx.Err() == nil {
		e.log.Debug("record alert event", "cluster", a.Cluster, "err", err)
	}
}

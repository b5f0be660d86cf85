package store

import (
	"context"
	"strconv"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

// Webhook is the stored form of a notification target; Secret is plain
// text in memory only, sealed at rest like a cluster password.
type Webhook = api.Webhook

// Alerts is the state of the alert rules (migration 9): the alerts and
// their states, the per-cluster rule overrides, silences, the webhooks and
// the record of deliveries.
//
// Alert states are written by the leader with its fence (a deposed leader
// cannot overwrite its successor's); the rest are API writes.
type Alerts interface {
	// ListAlerts lists every stored alert (any state), by id.
	ListAlerts(ctx context.Context) ([]api.Alert, error)
	// PutAlert inserts or replaces the alert with that identity, and
	// queues the notifications of its transition (notify) in the outbox
	// in the same transaction, so that either both are stored or neither.
	PutAlert(ctx context.Context, a api.Alert, notify ...Outgoing) error
	// DeleteAlert removes an alert; no error when it is gone.
	DeleteAlert(ctx context.Context, a api.Alert) error

	// GetAlertRules returns the cluster's overrides (empty: none).
	GetAlertRules(ctx context.Context, cluster string) (api.AlertRules, error)
	// PutAlertRules replaces the cluster's overrides.
	PutAlertRules(ctx context.Context, cluster string, rules api.AlertRules) error

	// CreateSilence inserts a silence. ErrConflict when the id is taken.
	CreateSilence(ctx context.Context, s api.Silence) error
	// ListSilences lists the silences ending after now, soonest end first.
	ListSilences(ctx context.Context, now time.Time) ([]api.Silence, error)
	// DeleteSilence removes a silence. ErrNotFound when absent.
	DeleteSilence(ctx context.Context, id string) error

	// PutWebhooks replaces every webhook. A webhook whose Secret is "set"
	// keeps the secret stored under its name (ErrNotFound when none is).
	PutWebhooks(ctx context.Context, hooks []Webhook) error
	// ListWebhooks lists the webhooks in the order put, secrets decrypted.
	ListWebhooks(ctx context.Context) ([]Webhook, error)

	// AddDelivery records a delivery and returns its id.
	AddDelivery(ctx context.Context, d api.Delivery) (int64, error)
	// ListDeliveries lists deliveries newest first, at most limit (<= 0:
	// all).
	ListDeliveries(ctx context.Context, limit int) ([]api.Delivery, error)
	// PruneDeliveries keeps the newest keep deliveries.
	PruneDeliveries(ctx context.Context, keep int) error

	// Outbox: notifications queued for a webhook and not yet delivered
	// (migration 10), so that a manager that stops leaves them to the
	// next one.
	//
	// QueueNotification stores a notification for a webhook; its id is
	// the delivery's id, the same on every attempt and every manager.
	QueueNotification(ctx context.Context, o Outgoing) (int64, error)
	// ClaimNotifications claims for by, until until, at most limit
	// notifications due at now and not claimed by another manager whose
	// claim still runs, oldest first.
	ClaimNotifications(ctx context.Context, by string, now, until time.Time, limit int) ([]Outgoing, error)
	// RetryNotification records a failed attempt of a claimed
	// notification and releases it until next.
	RetryNotification(ctx context.Context, o Outgoing, next time.Time) error
	// DoneNotification removes a notification: delivered, or its last
	// attempt failed. No error when it is gone.
	DoneNotification(ctx context.Context, id int64) error
	// ReleaseNotifications releases every claim of by (a manager that
	// stops), so the next manager need not wait for them to run out.
	ReleaseNotifications(ctx context.Context, by string) error
}

// Outgoing is a notification waiting in the outbox for one webhook.
type Outgoing struct {
	ID           int64
	CreatedAt    time.Time
	Webhook      string
	Notification api.Notification
	// Attempts made so far, the last one's error and status code.
	Attempts   int
	LastError  string
	LastStatus int
}

// AlertID is an alert's identity: rule, cluster, shard, instance.
func AlertID(a api.Alert) string {
	shard := "-"
	if a.Shard != nil {
		shard = strconv.Itoa(*a.Shard)
	}
	return a.Rule + "/" + a.Cluster + "/" + shard + "/" + a.Instance
}

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
	// PutAlert inserts or replaces the alert with that identity.
	PutAlert(ctx context.Context, a api.Alert) error
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
}

// AlertID is an alert's identity: rule, cluster, shard, instance.
func AlertID(a api.Alert) string {
	shard := "-"
	if a.Shard != nil {
		shard = strconv.Itoa(*a.Shard)
	}
	return a.Rule + "/" + a.Cluster + "/" + shard + "/" + a.Instance
}

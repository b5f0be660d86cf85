package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Alert states (GET /api/v1/alerts).
const (
	AlertPending  = "pending"
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// EventAlert is the type of the event each alert transition records.
const EventAlert = "alert"

// Alert is one alert: a rule that holds (or held) for one cluster, shard
// and instance. Its identity is rule + cluster + shard + instance.
type Alert struct {
	Rule     string `json:"rule"`
	Cluster  string `json:"cluster"`
	Shard    *int   `json:"shard,omitempty"`
	Instance string `json:"instance,omitempty"`
	State    string `json:"state"`
	// Since is when the alert entered its state.
	Since time.Time `json:"since"`
	// ActiveAt is when the condition started to hold (pending).
	ActiveAt time.Time `json:"activeAt"`
	Value    float64   `json:"value"`
	Message  string    `json:"message"`
	Severity string    `json:"severity"`
	Silenced bool      `json:"silenced,omitempty"`
}

// AlertList is the body of GET /api/v1/alerts.
type AlertList struct {
	Alerts []Alert `json:"alerts"`
}

// AlertRule is one rule's settings for one cluster. In a PUT, absent
// fields keep the default; in a GET every field is filled in.
type AlertRule struct {
	Enabled   *bool    `json:"enabled,omitempty"`
	Threshold *float64 `json:"threshold,omitempty"`
	ForMs     *int64   `json:"forMs,omitempty"`
}

// AlertRules is the body of PUT and GET /api/v1/clusters/{name}/alert-rules:
// rule name -> settings.
type AlertRules map[string]AlertRule

// Silence mutes notifications of the alerts it matches until EndsAt.
// Empty matchers match everything.
type Silence struct {
	ID        string    `json:"id"`
	Cluster   string    `json:"cluster,omitempty"`
	Rule      string    `json:"rule,omitempty"`
	Instance  string    `json:"instance,omitempty"`
	EndsAt    time.Time `json:"endsAt"`
	Comment   string    `json:"comment"`
	CreatedBy string    `json:"createdBy,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// CreateSilenceRequest is the body of POST /api/v1/silences: EndsAt or
// DurationMs, not both.
type CreateSilenceRequest struct {
	Cluster    string     `json:"cluster,omitempty"`
	Rule       string     `json:"rule,omitempty"`
	Instance   string     `json:"instance,omitempty"`
	EndsAt     *time.Time `json:"endsAt,omitempty"`
	DurationMs int64      `json:"durationMs,omitempty"`
	Comment    string     `json:"comment"`
}

// SilenceList is the body of GET /api/v1/silences.
type SilenceList struct {
	Silences []Silence `json:"silences"`
}

// Webhook formats.
const (
	WebhookJSON  = "json"
	WebhookSlack = "slack"
)

// SignatureHeader carries sha256=<hex HMAC-SHA256 of the body>.
const SignatureHeader = "X-Redis-Manager-Signature"

// DeliveryHeader carries a notification's delivery id: the same on every
// attempt, from every manager, so a receiver can drop a notification it
// has already accepted (a manager that stops between the receiver's 2xx
// and recording it sends it again).
const DeliveryHeader = "X-Redis-Manager-Delivery"

// Webhook is one notification target. In a GET, Secret is "set" or "".
type Webhook struct {
	Name   string `json:"name"`
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
	Format string `json:"format"`
}

// Notifications is the body of PUT and GET /api/v1/notifications.
type Notifications struct {
	Webhooks []Webhook `json:"webhooks"`
}

// Notification is the JSON body each webhook delivery POSTs (format json).
type Notification struct {
	Alert
	// Transition is the state the alert entered: firing or resolved
	// ("test" for a test delivery).
	Transition string `json:"transition"`
	// URL is the console's page of the cluster.
	URL string `json:"url"`
}

// Delivery is one notification sent to one webhook, with its attempts.
type Delivery struct {
	ID       int64     `json:"id"`
	Webhook  string    `json:"webhook"`
	At       time.Time `json:"at"`
	Rule     string    `json:"rule"`
	Cluster  string    `json:"cluster"`
	Instance string    `json:"instance,omitempty"`
	State    string    `json:"state"`
	// OK reports whether an attempt got a 2xx answer.
	OK         bool   `json:"ok"`
	Attempts   int    `json:"attempts"`
	StatusCode int    `json:"statusCode,omitempty"`
	Error      string `json:"error,omitempty"`
	DurationMs int64  `json:"durationMs"`
}

// DeliveryList is the body of GET /api/v1/notifications/deliveries.
type DeliveryList struct {
	Deliveries []Delivery `json:"deliveries"`
}

// TestNotificationRequest is the body of POST /api/v1/notifications/test.
type TestNotificationRequest struct {
	Webhook string `json:"webhook"`
}

// ListAlerts calls GET /api/v1/alerts; state and cluster filter ("" all).
func (c *Client) ListAlerts(ctx context.Context, state, cluster string) ([]Alert, error) {
	q := url.Values{}
	if state != "" {
		q.Set("state", state)
	}
	if cluster != "" {
		q.Set("cluster", cluster)
	}
	path := "/api/v1/alerts"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AlertList
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Alerts, err
}

// GetAlertRules calls GET /api/v1/clusters/{name}/alert-rules.
func (c *Client) GetAlertRules(ctx context.Context, cluster string) (AlertRules, error) {
	var out AlertRules
	err := c.do(ctx, http.MethodGet, clusterPath(cluster)+"/alert-rules", nil, &out)
	return out, err
}

// PutAlertRules calls PUT /api/v1/clusters/{name}/alert-rules.
func (c *Client) PutAlertRules(ctx context.Context, cluster string, rules AlertRules) (AlertRules, error) {
	var out AlertRules
	err := c.do(ctx, http.MethodPut, clusterPath(cluster)+"/alert-rules", rules, &out)
	return out, err
}

// CreateSilence calls POST /api/v1/silences.
func (c *Client) CreateSilence(ctx context.Context, req CreateSilenceRequest) (Silence, error) {
	var out Silence
	err := c.do(ctx, http.MethodPost, "/api/v1/silences", req, &out)
	return out, err
}

// ListSilences calls GET /api/v1/silences.
func (c *Client) ListSilences(ctx context.Context) ([]Silence, error) {
	var out SilenceList
	err := c.do(ctx, http.MethodGet, "/api/v1/silences", nil, &out)
	return out.Silences, err
}

// DeleteSilence calls DELETE /api/v1/silences/{id}.
func (c *Client) DeleteSilence(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/silences/"+url.PathEscape(id), nil, nil)
}

// GetNotifications calls GET /api/v1/notifications (secrets read "set").
func (c *Client) GetNotifications(ctx context.Context) (Notifications, error) {
	var out Notifications
	err := c.do(ctx, http.MethodGet, "/api/v1/notifications", nil, &out)
	return out, err
}

// PutNotifications calls PUT /api/v1/notifications.
func (c *Client) PutNotifications(ctx context.Context, n Notifications) (Notifications, error) {
	var out Notifications
	err := c.do(ctx, http.MethodPut, "/api/v1/notifications", n, &out)
	return out, err
}

// ListDeliveries calls GET /api/v1/notifications/deliveries.
func (c *Client) ListDeliveries(ctx context.Context) ([]Delivery, error) {
	var out DeliveryList
	err := c.do(ctx, http.MethodGet, "/api/v1/notifications/deliveries", nil, &out)
	return out.Deliveries, err
}

// TestNotification calls POST /api/v1/notifications/test.
func (c *Client) TestNotification(ctx context.Context, webhook string) (Delivery, error) {
	var out Delivery
	err := c.do(ctx, http.MethodPost, "/api/v1/notifications/test", TestNotificationRequest{Webhook: webhook}, &out)
	return out, err
}

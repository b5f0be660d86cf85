package api

import "time"

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

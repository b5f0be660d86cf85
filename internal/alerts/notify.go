package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// NotifyStore is what the notifier needs of the store.
type NotifyStore interface {
	ListWebhooks(ctx context.Context) ([]store.Webhook, error)
	AddDelivery(ctx context.Context, d api.Delivery) (int64, error)
	PruneDeliveries(ctx context.Context, keep int) error
	QueueNotification(ctx context.Context, o store.Outgoing) (int64, error)
	ClaimNotifications(ctx context.Context, by string, now, until time.Time, limit int) ([]store.Outgoing, error)
	RetryNotification(ctx context.Context, o store.Outgoing, next time.Time) error
	DoneNotification(ctx context.Context, id int64) error
	ReleaseNotifications(ctx context.Context, by string) error
}

// NotifierConfig tunes delivery; zero values take the defaults.
type NotifierConfig struct {
	// Attempts is how many times one delivery is tried (default 5).
	Attempts int
	// Backoff is the wait before the second attempt, doubled before each
	// next one (default 1 s: 1 s, 2 s, 4 s, 8 s).
	Backoff time.Duration
	// AttemptTimeout bounds one attempt (default 10 s).
	AttemptTimeout time.Duration
	// Workers deliver in parallel (default 4).
	Workers int
	// ID names this manager in the outbox's claims (default "notifier").
	ID string
	// Poll is how often the outbox is read for notifications that are
	// due (default 500 ms); a notification queued by this manager wakes
	// it at once.
	Poll time.Duration
	// ConsoleURL is the console's base URL, for the cluster page's link
	// in each notification ("" none).
	ConsoleURL string
	// KeepDeliveries is how many delivery records are kept (default 1000).
	KeepDeliveries int
}

// maxResponse bounds what is read of a webhook's answer.
const maxResponse = 4 << 10

// Notifier sends alert transitions to the webhooks through the store's
// outbox: Enqueue stores one notification per webhook, Run (on every
// manager) claims the due ones and makes one attempt each, a failed one
// waiting its backoff in the outbox, so a notification queued or being
// retried when its manager stops is sent by the next.
type Notifier struct {
	cfg    NotifierConfig
	store  NotifyStore
	log    *slog.Logger
	client *http.Client
	wake   chan struct{}
}

// NewNotifier returns a notifier; Run delivers what Enqueue queues.
func NewNotifier(cfg NotifierConfig, st NotifyStore, log *slog.Logger) *Notifier {
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.ID == "" {
		cfg.ID = "notifier"
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 500 * time.Millisecond
	}
	if cfg.KeepDeliveries <= 0 {
		cfg.KeepDeliveries = 1000
	}
	return &Notifier{cfg: cfg, store: st, log: log, wake: make(chan struct{}, 1),
		client: &http.Client{
			// No redirects: a webhook answers itself; following one would
			// resend the signed body to wherever the answer points.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
}

// Outgoing returns the notifications of an alert that entered its state,
// one per webhook, for the store to queue (the engine stores them with the
// alert's state in one transaction; Run sends them).
func (n *Notifier) Outgoing(ctx context.Context, a api.Alert) ([]store.Outgoing, error) {
	hooks, err := n.store.ListWebhooks(ctx)
	if err != nil {
		return nil, fmt.Errorf("notifications of %s on %s: list webhooks: %w", a.Rule, a.Cluster, err)
	}
	note := api.Notification{Alert: a, Transition: a.State, URL: n.clusterURL(a.Cluster)}
	out := make([]store.Outgoing, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, store.Outgoing{Webhook: h.Name, Notification: note})
	}
	return out, nil
}

// Wake makes Run look at the outbox now.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Enqueue queues the notifications of an alert outside of any state
// change (each a store write) and wakes Run.
func (n *Notifier) Enqueue(a api.Alert) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	outs, err := n.Outgoing(ctx, a)
	if err != nil {
		n.log.Error("notification dropped", "err", err)
		return
	}
	for _, o := range outs {
		if _, err := n.store.QueueNotification(ctx, o); err != nil {
			n.log.Error("queue notification; dropped", "webhook", o.Webhook, "rule", a.Rule, "cluster", a.Cluster, "err", err)
		}
	}
	n.Wake()
}

func (n *Notifier) clusterURL(cluster string) string {
	if n.cfg.ConsoleURL == "" {
		return ""
	}
	return strings.TrimRight(n.cfg.ConsoleURL, "/") + "/clusters/" + url.PathEscape(cluster)
}

// Run sends the outbox's due notifications until ctx ends, then releases
// its claims so that the next manager sends what is left at once.
func (n *Notifier) Run(ctx context.Context) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := n.store.ReleaseNotifications(rctx, n.cfg.ID); err != nil {
			n.log.Warn("release notifications", "err", err)
		}
	}()
	tick := time.NewTicker(n.cfg.Poll)
	defer tick.Stop()
	for {
		n.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.wake:
		}
	}
}

// round claims the due notifications and makes one attempt of each, at
// most Workers at once.
func (n *Notifier) round(ctx context.Context) {
	now := time.Now().UTC()
	// A claim outlives one attempt; a manager that dies leaves it to run
	// out.
	claimed, err := n.store.ClaimNotifications(ctx, n.cfg.ID, now, now.Add(n.cfg.AttemptTimeout+10*time.Second), 100)
	if err != nil && ctx.Err() == nil {
		n.log.Warn("claim notifications", "err", err)
	}
	if len(claimed) == 0 {
		return
	}
	hooks, err := n.store.ListWebhooks(ctx)
	if err != nil {
		return // claims run out; tried again then
	}
	byName := map[string]store.Webhook{}
	for _, h := range hooks {
		byName[h.Name] = h
	}
	sem := make(chan struct{}, n.cfg.Workers)
	var wg sync.WaitGroup
	for _, o := range claimed {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			n.send(ctx, byName, o)
		}()
	}
	wg.Wait()
}

// send makes one attempt of a claimed notification and records it: done
// when delivered or out of attempts, else back in the outbox until its
// backoff has passed.
func (n *Notifier) send(ctx context.Context, hooks map[string]store.Webhook, o store.Outgoing) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	note := o.Notification
	h, ok := hooks[o.Webhook]
	if !ok {
		// The webhook was removed since: nothing to send it to.
		_ = n.store.DoneNotification(rctx, o.ID)
		return
	}
	d := api.Delivery{Webhook: h.Name, At: o.CreatedAt, Rule: note.Rule, Cluster: note.Cluster, Instance: note.Instance, State: note.Transition}
	body, err := Body(h.Format, note)
	if err == nil {
		o.LastStatus, err = n.attempt(ctx, h, body, DeliveryID(o))
		if err != nil && ctx.Err() != nil {
			return // stopping: not an attempt; Run releases the claim
		}
	}
	o.Attempts++
	d.Attempts, d.StatusCode, d.OK = o.Attempts, o.LastStatus, err == nil
	if err != nil {
		o.LastError, d.Error = err.Error(), err.Error()
		if o.Attempts < n.cfg.Attempts {
			next := time.Now().UTC().Add(n.cfg.Backoff << (o.Attempts - 1))
			if err := n.store.RetryNotification(rctx, o, next); err != nil {
				n.log.Error("retry notification", "webhook", h.Name, "err", err)
			}
			return
		}
	}
	d.DurationMs = time.Since(o.CreatedAt).Milliseconds()
	n.record(rctx, d)
	if err := n.store.DoneNotification(rctx, o.ID); err != nil {
		n.log.Error("remove sent notification", "webhook", h.Name, "err", err)
	}
}

// DeliveryID is the value of the delivery header: the outbox row and when
// it was queued, unique per store and the same on every attempt.
func DeliveryID(o store.Outgoing) string {
	return fmt.Sprintf("%d-%d", o.ID, o.CreatedAt.UnixMicro())
}

// record stores a finished delivery (and prunes now and then).
func (n *Notifier) record(ctx context.Context, d api.Delivery) api.Delivery {
	if id, err := n.store.AddDelivery(ctx, d); err != nil {
		n.log.Error("record delivery", "webhook", d.Webhook, "err", err)
	} else {
		d.ID = id
		if id%100 == 0 {
			_ = n.store.PruneDeliveries(ctx, n.cfg.KeepDeliveries)
		}
	}
	if !d.OK {
		n.log.Warn("webhook delivery failed", "webhook", d.Webhook, "rule", d.Rule, "cluster", d.Cluster, "attempts", d.Attempts, "err", d.Error)
	}
	return d
}

// Test sends a test notification to the named webhook and returns its
// recorded delivery. store.ErrNotFound when there is no such webhook.
func (n *Notifier) Test(ctx context.Context, name string) (api.Delivery, error) {
	hooks, err := n.store.ListWebhooks(ctx)
	if err != nil {
		return api.Delivery{}, err
	}
	for _, h := range hooks {
		if h.Name == name {
			now := time.Now().UTC()
			note := api.Notification{Alert: api.Alert{Rule: "test", State: "test", Since: now, ActiveAt: now, Severity: Info,
				Message: "test notification from redis-manager"}, Transition: "test"}
			return n.Deliver(ctx, h, note), nil
		}
	}
	return api.Delivery{}, fmt.Errorf("webhook %q: %w", name, store.ErrNotFound)
}

// Body encodes a notification in the webhook's format.
func Body(format string, note api.Notification) ([]byte, error) {
	if format == api.WebhookSlack {
		where := note.Cluster
		if note.Instance != "" {
			where += " " + note.Instance
		}
		text := fmt.Sprintf("[%s] %s %s: %s", strings.ToUpper(note.Transition), note.Rule, where, note.Message)
		if note.URL != "" {
			text += " <" + note.URL + ">"
		}
		return json.Marshal(map[string]string{"text": text})
	}
	return json.Marshal(note)
}

// Sign is the signature header's value: sha256=<hex HMAC-SHA256 of body>.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Deliver POSTs one notification to one webhook at once (the test
// button), retrying with exponential backoff, and records the delivery.
func (n *Notifier) Deliver(ctx context.Context, h store.Webhook, note api.Notification) api.Delivery {
	start := time.Now()
	d := api.Delivery{Webhook: h.Name, At: start.UTC(), Rule: note.Rule, Cluster: note.Cluster, Instance: note.Instance, State: note.Transition}
	body, err := Body(h.Format, note)
	if err != nil {
		d.Error = err.Error()
	} else {
		wait := n.cfg.Backoff
		for d.Attempts < n.cfg.Attempts {
			d.Attempts++
			d.StatusCode, err = n.attempt(ctx, h, body, "")
			if err == nil {
				d.OK, d.Error = true, ""
				break
			}
			d.Error = err.Error()
			if d.Attempts == n.cfg.Attempts || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait *= 2
		}
	}
	d.DurationMs = time.Since(start).Milliseconds()
	// Recorded even when ctx ended (shutdown): with a fresh, short one.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return n.record(rctx, d)
}

// attempt is one POST; an answer outside 2xx is an error. id is the
// delivery header's value ("" none).
func (n *Notifier) attempt(ctx context.Context, h store.Webhook, body []byte, id string) (int, error) {
	actx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "redis-manager")
	if h.Secret != "" {
		req.Header.Set(api.SignatureHeader, Sign(h.Secret, body))
	}
	if id != "" {
		req.Header.Set(api.DeliveryHeader, id)
	}
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry credentials; the name says which webhook
		}
		return 0, err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		s := strings.TrimSpace(string(snippet))
		if len(s) > 200 {
			s = s[:200]
		}
		return resp.StatusCode, fmt.Errorf("answered %s: %s", resp.Status, s)
	}
	return resp.StatusCode, nil
}

// ValidateWebhooks checks webhooks before they are stored; the error
// names the field (e.g. "webhooks[1].url").
func ValidateWebhooks(hooks []api.Webhook) error {
	names := map[string]bool{}
	for i, h := range hooks {
		f := fmt.Sprintf("webhooks[%d].", i)
		switch {
		case h.Name == "" || len(h.Name) > 100:
			return &FieldError{Field: f + "name", Message: "is required, at most 100 characters"}
		case names[h.Name]:
			return &FieldError{Field: f + "name", Message: fmt.Sprintf("%q is used twice", h.Name)}
		case h.Format != api.WebhookJSON && h.Format != api.WebhookSlack:
			return &FieldError{Field: f + "format", Message: `must be "json" or "slack"`}
		case h.Secret == "":
			return &FieldError{Field: f + "secret", Message: `is required (or "set" to keep the stored one)`}
		}
		names[h.Name] = true
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &FieldError{Field: f + "url", Message: "must be an http:// or https:// URL"}
		}
	}
	return nil
}

package store

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

func TestAlertsStore(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, eng)
			t.Run("alerts", func(t *testing.T) { testAlerts(t, e) })
			t.Run("rules", func(t *testing.T) { testAlertRules(t, e) })
			t.Run("silences", func(t *testing.T) { testSilences(t, e) })
			t.Run("webhooks", func(t *testing.T) { testWebhooks(t, e) })
			t.Run("deliveries", func(t *testing.T) { testDeliveries(t, e) })
			t.Run("outbox", func(t *testing.T) { testOutbox(t, e) })
		})
	}
}

func testAlerts(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	zero, one := 0, 1
	a := api.Alert{Rule: "instance-down", Cluster: "orders", Shard: &zero, Instance: "orders-0-1", State: api.AlertPending, Since: base, ActiveAt: base, Value: 1, Message: "down"}
	b := api.Alert{Rule: "instance-down", Cluster: "orders", Shard: &one, Instance: "orders-1-1", State: api.AlertFiring, Since: base, ActiveAt: base}
	for _, x := range []api.Alert{a, b} {
		if err := s.PutAlert(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	a.State, a.Since = api.AlertFiring, base.Add(time.Second)
	if err := s.PutAlert(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListAlerts(ctx)
	if err != nil || len(got) != 2 {
		t.Fatalf("ListAlerts: %v %+v", err, got)
	}
	if got[0].Instance != "orders-0-1" || got[0].State != api.AlertFiring || !got[0].Since.Equal(base.Add(time.Second)) || *got[0].Shard != 0 {
		t.Fatalf("replaced alert read back as %+v", got[0])
	}
	if err := s.DeleteAlert(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAlert(ctx, b); err != nil {
		t.Fatalf("delete twice: %v", err)
	}
	if got, _ := s.ListAlerts(ctx); len(got) != 1 {
		t.Fatalf("after delete: %+v", got)
	}
}

func testAlertRules(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	if r, err := s.GetAlertRules(ctx, "orders"); err != nil || len(r) != 0 {
		t.Fatalf("no overrides: %v %v", r, err)
	}
	ms, off := int64(5000), false
	if err := s.PutAlertRules(ctx, "orders", api.AlertRules{"instance-down": {ForMs: &ms}, "replica-lag": {Enabled: &off}}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlertRules(ctx, "orders", api.AlertRules{"instance-down": {ForMs: &ms}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetAlertRules(ctx, "orders")
	if err != nil || len(r) != 1 || *r["instance-down"].ForMs != 5000 {
		t.Fatalf("overrides read back: %v %v", r, err)
	}
}

func testSilences(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	at := base
	for i, end := range []time.Duration{time.Hour, time.Minute, -time.Minute} {
		sl := api.Silence{ID: "silence-" + string(rune('a'+i)), Cluster: "orders", EndsAt: at.Add(end), Comment: "maintenance", CreatedAt: at}
		if err := s.CreateSilence(ctx, sl); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateSilence(ctx, api.Silence{ID: "silence-a", EndsAt: at}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate id: %v", err)
	}
	got, err := s.ListSilences(ctx, at)
	if err != nil || len(got) != 2 || got[0].ID != "silence-b" || got[1].ID != "silence-a" {
		t.Fatalf("silences in force, soonest end first: %v %+v", err, got)
	}
	if err := s.DeleteSilence(ctx, "silence-b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSilence(ctx, "silence-b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}

func testWebhooks(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	hooks := []Webhook{{Name: "ops", URL: "https://hooks.example/ops", Secret: "ops-webhook-secret", Format: "json"},
		{Name: "chat", URL: "https://hooks.example/chat", Secret: "chat-webhook-secret", Format: "slack"}}
	if err := s.PutWebhooks(ctx, hooks); err != nil {
		t.Fatal(err)
	}
	// The secret is sealed at rest.
	var enc string
	if err := e.s.db.QueryRowContext(ctx, "SELECT secret_enc FROM webhooks WHERE name = 'ops'").Scan(&enc); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(enc, "ops-webhook-secret") || enc == "" {
		t.Fatalf("secret stored as %q", enc)
	}
	// "set" keeps the stored secret; a new one replaces it.
	if err := s.PutWebhooks(ctx, []Webhook{{Name: "chat", URL: "https://hooks.example/chat2", Secret: "set", Format: "slack"},
		{Name: "ops", URL: "https://hooks.example/ops", Secret: "new-secret", Format: "json"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ListWebhooks(ctx)
	if err != nil || len(got) != 2 || got[0].Name != "chat" || got[0].Secret != "chat-webhook-secret" || got[0].URL != "https://hooks.example/chat2" || got[1].Secret != "new-secret" {
		t.Fatalf("webhooks read back: %v %+v", err, got)
	}
	if err := s.PutWebhooks(ctx, []Webhook{{Name: "new", URL: "https://x", Secret: "set", Format: "json"}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf(`"set" without a stored secret: %v`, err)
	}
	if got, _ := s.ListWebhooks(ctx); len(got) != 2 {
		t.Fatalf("a failed put changed the webhooks: %+v", got)
	}
}

func testDeliveries(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	for i := 0; i < 5; i++ {
		id, err := s.AddDelivery(ctx, api.Delivery{Webhook: "ops", Rule: "instance-down", Cluster: "orders", State: api.AlertFiring, OK: i%2 == 0, Attempts: i + 1})
		if err != nil || id <= 0 {
			t.Fatalf("AddDelivery: %d %v", id, err)
		}
	}
	got, err := s.ListDeliveries(ctx, 3)
	if err != nil || len(got) != 3 || got[0].Attempts != 5 || got[2].Attempts != 3 || got[0].ID <= got[1].ID {
		t.Fatalf("deliveries newest first: %v %+v", err, got)
	}
	if err := s.PruneDeliveries(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ListDeliveries(ctx, 0); len(got) != 2 || got[1].Attempts != 4 {
		t.Fatalf("after prune to 2: %+v", got)
	}
}

// testOutbox: a queued notification is claimed by one manager only while
// its claim runs; a retry releases it until its next time; a release
// hands every claim of a manager back; done removes it.
func testOutbox(t *testing.T, e *env) {
	ctx := t.Context()
	s := e.s
	t0 := time.Now().UTC().Truncate(time.Microsecond)
	note := api.Notification{Alert: api.Alert{Rule: "instance-down", Cluster: "orders", State: api.AlertFiring}, Transition: api.AlertFiring}
	id, err := s.QueueNotification(ctx, Outgoing{Webhook: "ops", Notification: note, CreatedAt: t0})
	if err != nil || id <= 0 {
		t.Fatalf("QueueNotification: %d %v", id, err)
	}
	got, err := s.ClaimNotifications(ctx, "a", t0.Add(time.Second), t0.Add(20*time.Second), 10)
	if err != nil || len(got) != 1 || got[0].ID != id || got[0].Webhook != "ops" || got[0].Notification.Rule != "instance-down" || !got[0].CreatedAt.Equal(t0) {
		t.Fatalf("claim by a: %v %+v", err, got)
	}
	if other, err := s.ClaimNotifications(ctx, "b", t0.Add(2*time.Second), t0.Add(30*time.Second), 10); err != nil || len(other) != 0 {
		t.Fatalf("b claimed what a holds: %v %+v", err, other)
	}
	o := got[0]
	o.Attempts, o.LastError, o.LastStatus = 1, "answered 500", 500
	if err := s.RetryNotification(ctx, o, t0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if early, _ := s.ClaimNotifications(ctx, "b", t0.Add(4*time.Second), t0.Add(30*time.Second), 10); len(early) != 0 {
		t.Fatalf("claimed before its retry time: %+v", early)
	}
	got, err = s.ClaimNotifications(ctx, "b", t0.Add(6*time.Second), t0.Add(30*time.Second), 10)
	if err != nil || len(got) != 1 || got[0].Attempts != 1 || got[0].LastStatus != 500 || got[0].LastError != "answered 500" {
		t.Fatalf("claim by b after the retry time: %v %+v", err, got)
	}
	if err := s.ReleaseNotifications(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.ClaimNotifications(ctx, "a", t0.Add(7*time.Second), t0.Add(30*time.Second), 10); len(got) != 1 {
		t.Fatalf("not claimable after b released it: %+v", got)
	}
	if err := s.DoneNotification(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.ClaimNotifications(ctx, "a", t0.Add(time.Hour), t0.Add(2*time.Hour), 10); len(got) != 0 {
		t.Fatalf("claimed after done: %+v", got)
	}

	// An alert's state and its notifications are one transaction: a
	// refused fence stores neither, an accepted write stores both.
	tr := api.Alert{Rule: "two-masters", Cluster: "orders", State: api.AlertFiring, Since: t0}
	outs := []Outgoing{{Webhook: "ops", Notification: api.Notification{Alert: tr, Transition: api.AlertFiring}}, {Webhook: "chat", Notification: api.Notification{Alert: tr, Transition: api.AlertFiring}}}
	deposed := WithFence(ctx, Fence{Name: "outbox-test", Holder: "nobody", Epoch: 7})
	if err := s.PutAlert(deposed, tr, outs...); !errors.Is(err, ErrFenced) {
		t.Fatalf("PutAlert under a lost fence: %v, want ErrFenced", err)
	}
	if got, _ := s.ClaimNotifications(ctx, "a", t0.Add(time.Hour), t0.Add(2*time.Hour), 10); len(got) != 0 {
		t.Fatalf("a refused alert write queued %+v", got)
	}
	for _, a := range mustAlerts(t, s) {
		if a.Rule == "two-masters" {
			t.Fatalf("a refused alert write stored %+v", a)
		}
	}
	if err := s.PutAlert(ctx, tr, outs...); err != nil {
		t.Fatal(err)
	}
	got, err = s.ClaimNotifications(ctx, "a", t0.Add(time.Hour), t0.Add(2*time.Hour), 10)
	if err != nil || len(got) != 2 || got[0].Webhook != "ops" || got[1].Webhook != "chat" || got[0].Notification.Rule != "two-masters" || got[0].ID == got[1].ID {
		t.Fatalf("PutAlert with notifications queued %v %+v, want ops then chat", err, got)
	}
	for _, o := range got {
		if err := s.DoneNotification(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
	}
	found := false
	for _, a := range mustAlerts(t, s) {
		found = found || (a.Rule == "two-masters" && a.State == api.AlertFiring)
	}
	if !found {
		t.Fatal("PutAlert with notifications did not store the alert")
	}
	if err := s.DeleteAlert(ctx, tr); err != nil {
		t.Fatal(err)
	}
}

func mustAlerts(t *testing.T, s Store) []api.Alert {
	t.Helper()
	as, err := s.ListAlerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return as
}

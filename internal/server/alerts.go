package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/alerts"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Tester sends a test notification (alerts.Notifier).
type Tester interface {
	Test(ctx context.Context, webhook string) (api.Delivery, error)
}

// maxSilence bounds a silence: a forgotten one must not mute a cluster
// for good.
const maxSilence = 30 * 24 * time.Hour

// alertRoutes are the endpoints of API.md's alerts and notifications.
func (h *apiHandler) alertRoutes(route func(string, auth.Role, handler), st store.Alerts, tester Tester) {
	route("GET /api/v1/alerts", auth.Viewer, func(r *http.Request) (int, any, error) {
		all, err := st.ListAlerts(r.Context())
		if err != nil {
			return 0, nil, err
		}
		q := r.URL.Query()
		state, cluster := q.Get("state"), q.Get("cluster")
		switch state {
		case "", api.AlertPending, api.AlertFiring, api.AlertResolved:
		default:
			return 0, nil, badRequest("state", "state %q: want pending, firing or resolved", state)
		}
		out := api.AlertList{Alerts: []api.Alert{}}
		for _, a := range all {
			if (state == "" || a.State == state) && (cluster == "" || a.Cluster == cluster) {
				out.Alerts = append(out.Alerts, a)
			}
		}
		return 200, out, nil
	})
	route("GET /api/v1/clusters/{name}/alert-rules", auth.Operator, func(r *http.Request) (int, any, error) {
		name := r.PathValue("name")
		if _, err := h.svc.GetCluster(r.Context(), name); err != nil {
			return 0, nil, err
		}
		o, err := st.GetAlertRules(r.Context(), name)
		if err != nil {
			return 0, nil, err
		}
		return 200, alerts.Full(o), nil
	})
	route("PUT /api/v1/clusters/{name}/alert-rules", auth.Operator, func(r *http.Request) (int, any, error) {
		name := r.PathValue("name")
		var o api.AlertRules
		if err := decode(r, &o); err != nil {
			return 0, nil, err
		}
		if err := alerts.Validate(o); err != nil {
			return 0, nil, fieldError(err)
		}
		if _, err := h.svc.GetCluster(r.Context(), name); err != nil {
			return 0, nil, err
		}
		if err := st.PutAlertRules(r.Context(), name, o); err != nil {
			return 0, nil, err
		}
		noteOf(r).summary = "alert rules of " + name
		return 200, alerts.Full(o), nil
	})
	route("POST /api/v1/silences", auth.Operator, func(r *http.Request) (int, any, error) {
		var req api.CreateSilenceRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		now := time.Now().UTC()
		s := api.Silence{ID: jobspec.NewID("silence"), Cluster: req.Cluster, Rule: req.Rule, Instance: req.Instance,
			Comment: req.Comment, CreatedAt: now}
		switch {
		case req.EndsAt != nil && req.DurationMs != 0:
			return 0, nil, badRequest("durationMs", "give endsAt or durationMs, not both")
		case req.EndsAt != nil:
			s.EndsAt = req.EndsAt.UTC()
		case req.DurationMs > 0:
			s.EndsAt = now.Add(time.Duration(req.DurationMs) * time.Millisecond)
		default:
			return 0, nil, badRequest("endsAt", "endsAt (a time) or durationMs (above 0) is required")
		}
		if !s.EndsAt.After(now) {
			return 0, nil, badRequest("endsAt", "must be in the future")
		}
		if s.EndsAt.Sub(now) > maxSilence {
			return 0, nil, badRequest("endsAt", "a silence lasts at most 30 days")
		}
		if req.Rule != "" && alerts.Severity(req.Rule) == "" {
			return 0, nil, badRequest("rule", "no rule %q", req.Rule)
		}
		if req.Comment == "" {
			return 0, nil, badRequest("comment", "is required: say why")
		}
		if p, ok := auth.FromContext(r.Context()); ok {
			s.CreatedBy = p.Name
		}
		if err := st.CreateSilence(r.Context(), s); err != nil {
			return 0, nil, err
		}
		noteOf(r).summary = "silence " + s.ID
		return 201, s, nil
	})
	route("GET /api/v1/silences", auth.Viewer, func(r *http.Request) (int, any, error) {
		ss, err := st.ListSilences(r.Context(), time.Now().UTC())
		return 200, api.SilenceList{Silences: ss}, err
	})
	route("DELETE /api/v1/silences/{id}", auth.Operator, func(r *http.Request) (int, any, error) {
		id := r.PathValue("id")
		if err := st.DeleteSilence(r.Context(), id); err != nil {
			return 0, nil, storeNotFound(err, fmt.Sprintf("no silence %q", id))
		}
		noteOf(r).summary = "silence " + id
		return http.StatusNoContent, nil, nil
	})
	route("GET /api/v1/notifications", auth.Admin, func(r *http.Request) (int, any, error) {
		hooks, err := st.ListWebhooks(r.Context())
		if err != nil {
			return 0, nil, err
		}
		return 200, redactHooks(hooks), nil
	})
	route("PUT /api/v1/notifications", auth.Admin, func(r *http.Request) (int, any, error) {
		var req api.Notifications
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		if err := alerts.ValidateWebhooks(req.Webhooks); err != nil {
			return 0, nil, fieldError(err)
		}
		if err := st.PutWebhooks(r.Context(), req.Webhooks); err != nil {
			return 0, nil, storeNotFound(err, err.Error())
		}
		noteOf(r).summary = fmt.Sprintf("%d webhooks", len(req.Webhooks))
		return 200, redactHooks(req.Webhooks), nil
	})
	route("GET /api/v1/notifications/deliveries", auth.Operator, func(r *http.Request) (int, any, error) {
		ds, err := st.ListDeliveries(r.Context(), 200)
		return 200, api.DeliveryList{Deliveries: ds}, err
	})
	route("POST /api/v1/notifications/test", auth.Admin, func(r *http.Request) (int, any, error) {
		var req api.TestNotificationRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		if req.Webhook == "" {
			return 0, nil, badRequest("webhook", "is required: the name of a webhook")
		}
		d, err := tester.Test(r.Context(), req.Webhook)
		if err != nil {
			return 0, nil, storeNotFound(err, fmt.Sprintf("no webhook %q", req.Webhook))
		}
		noteOf(r).summary = "test of webhook " + req.Webhook
		return 200, d, nil
	})
}

func redactHooks(hooks []api.Webhook) api.Notifications {
	out := api.Notifications{Webhooks: make([]api.Webhook, 0, len(hooks))}
	for _, h := range hooks {
		if h.Secret != "" {
			h.Secret = "set"
		}
		out.Webhooks = append(out.Webhooks, h)
	}
	return out
}

func fieldError(err error) error {
	var fe *alerts.FieldError
	if errors.As(err, &fe) {
		return badRequest(fe.Field, "%s", fe.Error())
	}
	return err
}

func storeNotFound(err error, msg string) error {
	if errors.Is(err, store.ErrNotFound) {
		return &httpError{http.StatusNotFound, api.ErrorDetail{Code: "not_found", Message: msg}}
	}
	return err
}

package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/api"
)

// TestAlertsAPIValidation: bad input answers 400 naming the field; the
// webhook secret is never answered; unknown names answer 404.
func TestAlertsAPIValidation(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	for _, c := range []struct {
		method, path, body string
		status             int
		field              string
	}{
		{"GET", "/api/v1/alerts?state=burning", "", 400, "state"},
		{"PUT", "/api/v1/clusters/nosuch/alert-rules", `{"memory-high":{"threshold":101}}`, 400, "memory-high.threshold"},
		{"PUT", "/api/v1/clusters/nosuch/alert-rules", `{"no-such-rule":{}}`, 400, "no-such-rule"},
		{"PUT", "/api/v1/clusters/nosuch/alert-rules", `{"instance-down":{"forMs":-1}}`, 400, "instance-down.forMs"},
		{"PUT", "/api/v1/clusters/nosuch/alert-rules", `{"instance-down":{"forMs":1000}}`, 404, ""},
		{"GET", "/api/v1/clusters/nosuch/alert-rules", "", 404, ""},
		{"POST", "/api/v1/silences", `{"comment":"x"}`, 400, "endsAt"},
		{"POST", "/api/v1/silences", `{"durationMs":1000,"endsAt":"2030-01-01T00:00:00Z","comment":"x"}`, 400, "durationMs"},
		{"POST", "/api/v1/silences", `{"durationMs":1000}`, 400, "comment"},
		{"POST", "/api/v1/silences", `{"durationMs":1000,"rule":"nope","comment":"x"}`, 400, "rule"},
		{"POST", "/api/v1/silences", `{"endsAt":"2001-01-01T00:00:00Z","comment":"x"}`, 400, "endsAt"},
		{"DELETE", "/api/v1/silences/nosuch", "", 404, ""},
		{"PUT", "/api/v1/notifications", `{"webhooks":[{"name":"a","url":"ftp://x/y","secret":"s","format":"json"}]}`, 400, "webhooks[0].url"},
		{"PUT", "/api/v1/notifications", `{"webhooks":[{"name":"a","url":"https://x/y","secret":"s","format":"xml"}]}`, 400, "webhooks[0].format"},
		{"PUT", "/api/v1/notifications", `{"webhooks":[{"name":"a","url":"https://x/y","secret":"","format":"json"}]}`, 400, "webhooks[0].secret"},
		{"PUT", "/api/v1/notifications", `{"webhooks":[{"name":"a","url":"https://x/y","secret":"set","format":"json"}]}`, 404, ""},
		{"POST", "/api/v1/notifications/test", `{"webhook":"nosuch"}`, 404, ""},
		{"POST", "/api/v1/notifications/test", `{}`, 400, "webhook"},
	} {
		res := ts.do(t, req{method: c.method, path: c.path, body: c.body, bearer: testAdminToken})
		var e api.ErrorBody
		_ = json.Unmarshal(res.body, &e)
		if res.status != c.status || e.Error.Field != c.field {
			t.Errorf("%s %s %s: %d field %q (%s), want %d field %q", c.method, c.path, c.body, res.status, e.Error.Field, res.body, c.status, c.field)
		}
	}
	const secret = "webhook-secret-value-1"
	res := ts.do(t, req{method: "PUT", path: "/api/v1/notifications", bearer: testAdminToken,
		body: `{"webhooks":[{"name":"ops","url":"https://hooks.example/x","secret":"` + secret + `","format":"slack"}]}`})
	if res.status != 200 || strings.Contains(string(res.body), secret) {
		t.Fatalf("PUT notifications: %d %s", res.status, res.body)
	}
	res = ts.do(t, req{method: "GET", path: "/api/v1/notifications", bearer: testAdminToken})
	var n api.Notifications
	if err := json.Unmarshal(res.body, &n); err != nil || strings.Contains(string(res.body), secret) || len(n.Webhooks) != 1 || n.Webhooks[0].Secret != "set" || n.Webhooks[0].Format != "slack" {
		t.Fatalf("GET notifications: %d %s", res.status, res.body)
	}
	// "set" keeps the stored secret.
	res = ts.do(t, req{method: "PUT", path: "/api/v1/notifications", bearer: testAdminToken,
		body: `{"webhooks":[{"name":"ops","url":"https://hooks.example/y","secret":"set","format":"json"}]}`})
	hooks, err := ts.st.ListWebhooks(t.Context())
	if res.status != 200 || err != nil || len(hooks) != 1 || hooks[0].Secret != secret || hooks[0].URL != "https://hooks.example/y" {
		t.Fatalf("PUT with \"set\": %d %s; stored %+v %v", res.status, res.body, hooks, err)
	}
}

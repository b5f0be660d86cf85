package server

import (
	"encoding/json"
	"testing"

	"github.com/redis-manager/redis-manager/api"
)

// TestAutoscalingAPI: a policy is checked against the cluster (400 naming
// the field, 422 without a maxmemory to raise), stored with its defaults,
// shown to viewers, and turned off.
func TestAutoscalingAPI(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOpts{})
	for _, name := range []string{"orders", "nomax"} {
		body := `{"name":"` + name + `","maxmemory":"100mb"}`
		if name == "nomax" {
			body = `{"name":"nomax"}`
		}
		if res := ts.do(t, req{method: "POST", path: "/api/v1/clusters", body: body, bearer: testAdminToken}); res.status != 202 {
			t.Fatalf("create %s: %d %s", name, res.status, res.body)
		}
	}
	for _, c := range []struct {
		path, body string
		status     int
		field      string
	}{
		{"orders", `{}`, 400, ""},
		{"orders", `{"replicas":{"min":3,"max":2,"metric":"ops","target":100}}`, 400, "replicas.min"},
		{"orders", `{"replicas":{"min":-1,"max":2,"metric":"ops","target":100}}`, 400, "replicas.min"},
		{"orders", `{"replicas":{"min":1,"max":99,"metric":"ops","target":100}}`, 400, "replicas.max"},
		{"orders", `{"replicas":{"min":1,"max":3,"metric":"memory","target":100}}`, 400, "replicas.metric"},
		{"orders", `{"replicas":{"min":1,"max":3,"metric":"ops","target":0}}`, 400, "replicas.target"},
		{"orders", `{"replicas":{"min":1,"max":3,"metric":"cpu","target":150}}`, 400, "replicas.target"},
		{"orders", `{"replicas":{"min":1,"max":3,"metric":"ops","target":10},"scaleInCooldownMs":-1}`, 400, "scaleInCooldownMs"},
		{"orders", `{"replicas":{"min":1,"max":3,"metric":"ops","target":10},"stabilizationMs":-5}`, 400, "stabilizationMs"},
		{"orders", `{"memory":{"max":"50mb"}}`, 400, "memory.max"},
		{"orders", `{"memory":{"max":"lots"}}`, 400, "memory.max"},
		{"orders", `{"memory":{"max":"1gb","highPercent":120}}`, 400, "memory.highPercent"},
		{"orders", `{"memory":{"max":"1gb","stepPercent":5}}`, 400, "memory.stepPercent"},
		{"orders", `{"memory":{"max":"1gb","lowPercent":60}}`, 400, "memory.lowPercent"},
		{"orders", `{"replicas":{"min":1,"max":3,"metric":"ops","target":10},"bogus":1}`, 400, "bogus"},
		{"nomax", `{"memory":{"max":"1gb"}}`, 422, "memory"},
		{"nosuch", `{"replicas":{"min":1,"max":3,"metric":"ops","target":10}}`, 404, ""},
	} {
		res := ts.do(t, req{method: "PUT", path: "/api/v1/clusters/" + c.path + "/autoscaling", body: c.body, bearer: testAdminToken})
		var e api.ErrorBody
		_ = json.Unmarshal(res.body, &e)
		if res.status != c.status || e.Error.Field != c.field {
			t.Errorf("PUT %s %s: %d field %q (%s), want %d field %q", c.path, c.body, res.status, e.Error.Field, res.body, c.status, c.field)
		}
	}
	if res := ts.do(t, req{method: "GET", path: "/api/v1/clusters/orders/autoscaling", bearer: testAdminToken}); res.status != 404 {
		t.Fatalf("GET before a policy: %d %s", res.status, res.body)
	}
	res := ts.do(t, req{method: "PUT", path: "/api/v1/clusters/orders/autoscaling", bearer: testAdminToken,
		body: `{"replicas":{"min":1,"max":4,"metric":"cpu","target":60},"memory":{"max":"1gb"},"scaleOutCooldownMs":0,"dryRun":true}`})
	if res.status != 200 {
		t.Fatalf("PUT: %d %s", res.status, res.body)
	}
	viewer := ts.token(t, "look", "viewer")
	res = ts.do(t, req{method: "GET", path: "/api/v1/clusters/orders/autoscaling", bearer: viewer})
	var got api.Autoscaling
	if err := json.Unmarshal(res.body, &got); err != nil || res.status != 200 {
		t.Fatalf("GET: %d %s %v", res.status, res.body, err)
	}
	p := got.Policy
	if p.Replicas == nil || p.Replicas.Max != 4 || !p.DryRun || *p.ScaleOutCooldownMs != 0 || *p.ScaleInCooldownMs != 600000 ||
		*p.StabilizationMs != 900000 || *p.FailoverWindowMs != 600000 || p.Memory == nil || *p.Memory.HighPercent != 80 ||
		*p.Memory.StepPercent != 50 || p.Memory.Min != "100mb" || got.Decisions == nil {
		t.Fatalf("GET: policy without its defaults: %s", res.body)
	}
	if res := ts.do(t, req{method: "PUT", path: "/api/v1/clusters/orders/autoscaling", bearer: viewer, body: `{}`}); res.status != 403 {
		t.Fatalf("PUT as viewer: %d", res.status)
	}
	if res := ts.do(t, req{method: "DELETE", path: "/api/v1/clusters/orders/autoscaling", bearer: testAdminToken}); res.status != 204 {
		t.Fatalf("DELETE: %d %s", res.status, res.body)
	}
	if res := ts.do(t, req{method: "DELETE", path: "/api/v1/clusters/orders/autoscaling", bearer: testAdminToken}); res.status != 404 {
		t.Fatalf("DELETE again: %d %s", res.status, res.body)
	}
}

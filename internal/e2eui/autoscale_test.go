package e2eui

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestConsoleAutoscaling drives the cluster page's autoscaling card and
// form in real Chromium against a real manager with a real cluster: an
// operator sets a policy through the form and the API returns it; the
// engine's decisions (a dry run whose clients target of 1 per replica
// every replica passes) appear on the open page without a reload; a bad
// value shows the API's message next to the field it names, keeps what
// was typed and leaves the stored policy as it was; a viewer sees the
// policy and no form; the operator turns autoscaling off from the page.
func TestConsoleAutoscaling(t *testing.T) {
	b := sharedBrowser(t)
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	requireConsole(t, m)
	if !streams(t, m) {
		skipOrFail(t, "needs the live stream GET /api/v1/stream")
	}
	ctx := context.Background()
	operator := createUser(t, m, "olga", "operator")
	viewer := createUser(t, m, "vic", "viewer")
	one := 1
	if _, err := m.Client.CreateCluster(ctx, api.CreateClusterRequest{Name: "auto", Replicas: &one, Maxmemory: "32mb"}); err != nil {
		t.Fatal(err)
	}
	m.WaitPhase(ctx, "auto", api.PhaseReady, 90*time.Second)

	op := b.NewTab(t, m.URL)
	op.SignIn("olga", operator)
	op.Go("/clusters/auto")
	if got, _ := op.Attr("#autoscaling", "data-autoscale"); got != "off" {
		t.Fatalf("#autoscaling data-autoscale = %q before any policy, want off", got)
	}
	op.Mark()
	form := `form[data-form="autoscale"]`
	fill := func(name, v string) { op.Fill(fmt.Sprintf(`%s [name=%q]`, form, name), v) }
	fill("replicas.min", "1")
	fill("replicas.max", "3")
	fill("replicas.metric", "clients")
	fill("replicas.target", "1")
	fill("scaleOutAfterMs", "2000")
	fill("scaleOutCooldownMs", "5000")
	fill("failoverWindowMs", "0")
	Eval[bool](op, `(() => { const m = document.querySelector("#as-memory-on"); m.checked = true;
		document.querySelector("#as-dry").checked = true; return true })()`)
	fill("memory.max", "64mb")
	fill("memory.highPercent", "85")
	op.Click(form + ` [data-action="autoscale"]`)
	var stored api.Autoscaling
	waitAPI(t, "the form's policy in the API", 10*time.Second, func() bool {
		as, err := m.Client.GetAutoscaling(ctx, "auto")
		stored = as
		return err == nil
	})
	p := stored.Policy
	if p.Replicas == nil || *p.Replicas != (api.AutoscaleReplicas{Min: 1, Max: 3, Metric: api.MetricClients, Target: 1}) ||
		!p.DryRun || p.Memory == nil || p.Memory.Max != "64mb" || *p.Memory.HighPercent != 85 ||
		*p.ScaleOutAfterMs != 2000 || *p.ScaleOutCooldownMs != 5000 || *p.FailoverWindowMs != 0 ||
		*p.StabilizationMs != 900000 {
		js, _ := json.Marshal(p)
		t.Fatalf("the policy set through the form is %s", js)
	}
	// The card shows it, and the engine's dry-run decision, without a
	// reload.
	op.WaitUntil("the card shows the policy", `document.querySelector("#autoscaling").dataset.autoscale === "on" &&
		document.querySelector('[data-as="replicas"]').innerText.includes("1–3 per shard, metric clients, target 1")`, 15*time.Second)
	start := time.Now()
	op.WaitUntil("a dry-run scale-out on the page", `[...document.querySelectorAll("#autoscaling tr[data-outcome]")].some(r =>
		r.dataset.outcome === "dry-run" && r.innerText.includes("scale-out") && r.innerText.includes("clients"))`, 30*time.Second)
	t.Logf("the dry-run decision showed %s after the policy", time.Since(start).Round(100*time.Millisecond))
	as, err := m.Client.GetAutoscaling(ctx, "auto")
	if err != nil || len(as.Decisions) == 0 {
		t.Fatalf("GET autoscaling: %v, %d decisions", err, len(as.Decisions))
	}
	if op.Text(`[data-as="readings"]`) == "" || as.State.Readings == nil {
		t.Errorf("no readings on the page or in the API: %q", op.Text(`[data-as="readings"]`))
	}
	if !op.Marked() {
		t.Error("the page reloaded")
	}
	(&consoleEnv{shots: os.Getenv("REDIS_MANAGER_SCREENSHOTS")}).shot(t, op, "cluster-autoscaling", 1280)

	// A bad value: the API's message next to the field; what was typed
	// stays; the stored policy is unchanged.
	before, _ := m.Client.GetAutoscaling(ctx, "auto")
	_, _, body := do(t, m.URL, request{Method: "PUT", Path: "/api/v1/clusters/auto/autoscaling", Token: m.Token,
		Body: `{"replicas":{"min":1,"max":40,"metric":"clients","target":7}}`})
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Field != "replicas.max" {
		t.Fatalf("the API's answer to max 40: %s", body)
	}
	fill("replicas.max", "40")
	fill("replicas.target", "7")
	op.Click(form + ` [data-action="autoscale"]`)
	op.WaitUntil("the error next to replicas.max", fmt.Sprintf(`document.querySelector('[data-error-for="replicas.max"]').innerText.includes(%s) &&
		document.querySelector('#as-max').getAttribute("aria-invalid") === "true"`, strconv.Quote(eb.Error.Message)), 10*time.Second)
	if v := Eval[string](op, `document.querySelector("#as-max").value + "/" + document.querySelector("#as-target").value + "/" + document.querySelector("#as-mem-max").value`); v != "40/7/64mb" {
		t.Errorf("after the error the form holds %q, want what was typed 40/7/64mb", v)
	}
	// A second field's error goes next to that field.
	fill("replicas.max", "3")
	fill("memory.max", "lots")
	op.Click(form + ` [data-action="autoscale"]`)
	op.WaitUntil("the error next to memory.max", `document.querySelector('[data-error-for="memory.max"]').innerText.trim() !== "" &&
		document.querySelector('[data-error-for="replicas.max"]').innerText.trim() === ""`, 10*time.Second)
	after, _ := m.Client.GetAutoscaling(ctx, "auto")
	if !reflect.DeepEqual(before.Policy, after.Policy) {
		b1, _ := json.Marshal(before.Policy)
		b2, _ := json.Marshal(after.Policy)
		t.Errorf("refused values changed the stored policy: %s → %s", b1, b2)
	}

	// A viewer sees the policy and the decisions, and no form.
	vt := b.NewTab(t, m.URL)
	vt.SignIn("vic", viewer)
	vt.Go("/clusters/auto")
	if n := vt.Count(`form[data-form="autoscale"], [data-action="autoscale"], [data-action="autoscale-off"], #autoscaling input`); n != 0 {
		t.Errorf("the viewer's page has %d autoscaling controls", n)
	}
	if got := vt.Text(`[data-as="replicas"]`); got == "" || vt.Count(`#autoscaling tr[data-outcome]`) == 0 {
		t.Errorf("the viewer's card: replicas %q, %d decisions", got, vt.Count(`#autoscaling tr[data-outcome]`))
	}

	// Off, from the page.
	op.Click(`[data-action="autoscale-off"]`)
	waitAPI(t, "autoscaling off", 10*time.Second, func() bool {
		_, err := m.Client.GetAutoscaling(ctx, "auto")
		return api.IsNotFound(err)
	})
	op.WaitUntil("the card says off", `document.querySelector("#autoscaling").dataset.autoscale === "off"`, 15*time.Second)
}

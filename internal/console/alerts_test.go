package console_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/console"
)

// TestAlertsShown: with the store's alerts, the overview counts each
// cluster's firing alerts and puts a cluster with firing alerts before
// an equally phased one without; the cluster page lists its pending and
// firing alerts (firing first), not resolved ones nor other clusters'.
func TestAlertsShown(t *testing.T) {
	f := newFixture(t)
	f.h = console.New(console.Config{Service: f.svc, Access: f.users, Alerts: f.st, Version: "test"})
	f.addCluster(t, "alpha", api.PhaseReady, 1, 1)
	f.addCluster(t, "omega", api.PhaseReady, 1, 1)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	zero := 0
	for _, a := range []api.Alert{
		{Rule: "memory-high", Cluster: "omega", Shard: &zero, Instance: "omega-0-0", State: api.AlertFiring, Since: now, ActiveAt: now, Value: 93, Message: "memory at 93 % of maxmemory"},
		{Rule: "replica-link-down", Cluster: "omega", Shard: &zero, Instance: "omega-0-1", State: api.AlertPending, Since: now, ActiveAt: now, Message: "link down"},
		{Rule: "sentinel-tilt", Cluster: "omega", Instance: "omega-sentinel-0", State: api.AlertFiring, Since: now, ActiveAt: now, Message: "in TILT", Silenced: true},
		{Rule: "instance-down", Cluster: "omega", Shard: &zero, Instance: "omega-0-1", State: "resolved", Since: now, ActiveAt: now, Message: "was down"},
		{Rule: "instance-down", Cluster: "alpha", Shard: &zero, Instance: "alpha-0-1", State: "resolved", Since: now, ActiveAt: now, Message: "was down"},
	} {
		if err := f.st.PutAlert(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	_, body := f.get(t, "/", principal(auth.Viewer))
	var order []string
	for _, m := range regexp.MustCompile(`<tr data-cluster="([a-z]+)">`).FindAllStringSubmatch(body, -1) {
		order = append(order, m[1])
	}
	if got := strings.Join(order, ","); got != "omega,alpha" {
		t.Errorf("overview order %s, want omega (2 firing) before alpha", got)
	}
	row := func(name string) string {
		r := body[strings.Index(body, `<tr data-cluster="`+name+`">`):]
		return r[:strings.Index(r, "</tr>")]
	}
	if !strings.Contains(row("omega"), `<td class="num">2</td>`) || !strings.Contains(row("alpha"), `<td class="num">0</td>`) {
		t.Errorf("firing counts: omega %s\nalpha %s", row("omega"), row("alpha"))
	}

	_, body = f.get(t, "/clusters/omega", principal(auth.Viewer))
	var listed []string
	for _, m := range regexp.MustCompile(`data-alert="([a-z-]+)" data-alert-state="([a-z]+)"`).FindAllStringSubmatch(body, -1) {
		listed = append(listed, m[1]+":"+m[2])
	}
	if got, want := strings.Join(listed, ","), "memory-high:firing,sentinel-tilt:firing,replica-link-down:pending"; got != want {
		t.Errorf("cluster page alerts %s, want %s", got, want)
	}
	for _, want := range []string{"memory at 93 % of maxmemory", "silenced", "<code>omega-0-0</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("cluster page lacks %q", want)
		}
	}
	// The live fragment carries the alerts too (they change on alert events).
	_, frag := f.get(t, "/clusters/omega?fragment=live", principal(auth.Viewer))
	if !strings.Contains(frag, `id="alerts"`) || !strings.Contains(frag, `data-alert="memory-high"`) {
		t.Errorf("the live fragment lacks the alerts")
	}
	_, body = f.get(t, "/clusters/alpha", principal(auth.Viewer))
	if strings.Contains(body, "data-alert=") || !strings.Contains(body, "No alert pending or firing.") {
		t.Errorf("alpha's page lists alerts it does not have")
	}
}

package e2eui

import (
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestHarness checks the harness itself: Chromium starts, a tab reaches a
// real manager, reads what it serves, and takes screenshots at both widths.
func TestHarness(t *testing.T) {
	b := sharedBrowser(t)
	m := testenv.StartManager(t, testenv.ManagerOptions{})
	tab := b.NewTab(t, m.URL)
	if err := tab.run(tabTimeout, navigate(tab.URL("/api/v1/health"))); err != nil {
		t.Fatal(err)
	}
	body := Eval[string](tab, `document.body.innerText`)
	if !strings.Contains(body, `"leader"`) {
		t.Fatalf("health in Chromium: %q", body)
	}
	for _, w := range []int64{1280, 390} {
		png := tab.Screenshot(w)
		if len(png) < 100 || string(png[1:4]) != "PNG" {
			t.Fatalf("screenshot at %d px is not a PNG (%d bytes)", w, len(png))
		}
		if got := Eval[int](tab, `window.innerWidth`); int64(got) != w {
			t.Errorf("viewport %d px wide, want %d", got, w)
		}
	}
}

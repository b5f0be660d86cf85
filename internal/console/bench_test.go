package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
)

// benchFixture records 100 clusters of 2 shards × (1 master + 4 replicas),
// 1,000 instances, in a real SQLite store.
func benchFixture(b *testing.B) *fixture {
	f := newFixture(b)
	phases := []string{api.PhaseReady, api.PhaseReady, api.PhaseReady, api.PhaseDegraded, api.PhaseCreating}
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("c%03d", i)
		f.addCluster(b, name, phases[i%len(phases)], 2, 4)
		if i%10 == 0 {
			f.addHistory(b, name)
		}
	}
	return f
}

func benchPage(b *testing.B, f *fixture, path string) {
	p := principal(auth.Viewer)
	req := httptest.NewRequest("GET", path, nil)
	req = req.WithContext(auth.WithPrincipal(req.Context(), *p))
	bytes := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d", path, w.Code)
		}
		bytes = w.Body.Len()
	}
	b.ReportMetric(float64(bytes), "html-bytes")
}

// go test -run '^$' -bench 'Render' -benchtime 200x ./internal/console/
func BenchmarkRenderOverview100Clusters(b *testing.B) { benchPage(b, benchFixture(b), "/") }

func BenchmarkRenderClusterPage(b *testing.B) { benchPage(b, benchFixture(b), "/clusters/c000") }

func BenchmarkRenderClusterLiveFragment(b *testing.B) {
	benchPage(b, benchFixture(b), "/clusters/c000?fragment=live")
}

func BenchmarkRenderEvents100Clusters(b *testing.B) { benchPage(b, benchFixture(b), "/events") }

func BenchmarkRenderJobs100Clusters(b *testing.B) { benchPage(b, benchFixture(b), "/jobs") }

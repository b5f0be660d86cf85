package console_test

import (
	"fmt"
	"io"
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

// benchGate renders a page through the whole stack serve builds (the
// gate finds the session in the store first), as a signed-in viewer.
func benchGate(b *testing.B, path string) {
	f := benchFixture(b)
	srv := flowServer(b, f)
	s := signIn(b, srv, "vera")
	client := &http.Client{}
	bytes := 0
	b.ResetTimer()
	for b.Loop() {
		r, _ := http.NewRequest("GET", srv.URL+path, nil)
		r.AddCookie(s.cookie)
		res, err := client.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			b.Fatalf("%s: %d", path, res.StatusCode)
		}
		bytes = int(n)
	}
	b.ReportMetric(float64(bytes), "html-bytes")
}

func BenchmarkGateOverview100Clusters(b *testing.B) { benchGate(b, "/") }

func BenchmarkGateClusterPage(b *testing.B) { benchGate(b, "/clusters/c000") }

package server

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
)

// BenchmarkListClusters is what GET /api/v1/clusters costs with 1,020
// instances stored (seedScale): the store read, JSON decoding of the
// statuses, and writing the response as writeJSON does.
//
//	go test -run '^$' -bench BenchmarkListClusters -benchmem ./internal/server
func BenchmarkListClusters(b *testing.B) {
	dir := b.TempDir()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "manager.db"), filepath.Join(dir, "secret.key"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	seedScale(b, st, 20)
	b.ResetTimer()
	size := 0
	for i := 0; i < b.N; i++ {
		cls, err := st.ListClusters(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		out := make([]api.Cluster, 0, len(cls))
		for _, cl := range cls {
			out = append(out, api.Cluster{Name: cl.Name, Spec: cl.Spec, Status: cl.Status})
		}
		rec := httptest.NewRecorder()
		writeJSON(rec, 200, out)
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/response")
}

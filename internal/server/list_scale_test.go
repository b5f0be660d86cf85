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
// instances stored (seedScale). uncached: the store read, JSON decoding
// of every status and writing the response as writeJSON does (the path
// without a ClusterCache). cached/unchanged: the revisions read, the
// bytes already encoded. cached/one-changed: one cluster's status written
// before each request (the observe loop writes each cluster every round),
// so that one is read, decoded and encoded again, the rest reused.
// cached/all-changed: every cluster new to the cache. cached/gzip/…: the
// same, gzipped (what browsers and Go's client ask for).
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
	ctx := context.Background()
	b.Run("uncached", func(b *testing.B) {
		size := 0
		for i := 0; i < b.N; i++ {
			cls, err := st.ListClusters(ctx)
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
	})
	cl, err := st.GetCluster(ctx, "s05")
	if err != nil {
		b.Fatal(err)
	}
	for _, gz := range []bool{false, true} {
		name := "cached"
		if gz {
			name = "cached/gzip"
		}
		c := NewClusterCache(st, 0)
		size := 0
		list := func(b *testing.B) {
			body, err := c.listJSON(ctx, gz)
			if err != nil {
				b.Fatal(err)
			}
			size = len(body)
		}
		b.Run(name+"/unchanged", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				list(b)
			}
			b.ReportMetric(float64(size), "bytes/response")
		})
		b.Run(name+"/one-changed", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				cl.Status.Shards[0].Master.OpsPerSec = int64(i)
				if err := st.UpdateClusterStatus(ctx, cl.Name, cl.Status); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				list(b)
			}
		})
		b.Run(name+"/all-changed", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c = NewClusterCache(st, 0)
				list(b)
			}
		})
	}
}

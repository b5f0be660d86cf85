package server

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/stream"
)

// TestStreamOutlivesServerTimeouts: a stream served by a server whose read
// and write timeouts are 300 ms still delivers a change made 1.5 s after
// it opened, with the headers a proxy needs.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	src := stream.NewMemSource()
	created := time.Now()
	src.PutCluster(api.Cluster{Name: "a", CreatedAt: created, Status: api.ClusterStatus{Phase: api.PhaseCreating}})
	hub := stream.New(src, slog.New(slog.DiscardHandler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := newConnLimiter(ln, 16)
	srv := newHTTPServer(Handler(HandlerConfig{Token: "tok", Stream: hub, Log: slog.New(slog.DiscardHandler)}), lim)
	srv.ReadTimeout, srv.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	srv.RegisterOnShutdown(hub.Close)
	go func() { _ = srv.Serve(lim) }()
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/api/v1/stream", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for h, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	want := func(prefix string, within time.Duration) string {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream closed while waiting for %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no line %q within %s", prefix, within)
			}
		}
	}
	want("retry: 2000", time.Second)
	if l := want("data: ", time.Second); !strings.Contains(l, `"phase":"Creating"`) {
		t.Fatalf("snapshot: %s", l)
	}
	time.Sleep(1500 * time.Millisecond)
	src.PutCluster(api.Cluster{Name: "a", CreatedAt: created, Status: api.ClusterStatus{Phase: api.PhaseReady}})
	if l := want("data: ", 2*time.Second); !strings.Contains(l, `"phase":"Ready"`) {
		t.Fatalf("change: %s", l)
	}
	// Shutting down ends the stream (the client reconnects elsewhere).
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	_ = srv.Shutdown(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %s with a stream open", d)
	}
	for range lines {
	}
}

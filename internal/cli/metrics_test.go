package cli

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestClusterMetrics: `cluster metrics` asks for the range given, prints
// per instance and series the latest, average and maximum of what the
// server answered, and -o json prints the answer itself.
func TestClusterMetrics(t *testing.T) {
	t.Parallel()
	s := startServer(t, testenv.ManagerOptions{})
	s.create(t, small("orders"))
	sflags := []string{"--server", s.URL, "--token", s.Token}
	// The manager samples every 10 s: wait for the first sample.
	deadline := time.Now().Add(25 * time.Second)
	for {
		m, err := s.Client.Metrics(t.Context(), "orders", "1h", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Instances) > 0 && lastPoint(m.Instances[0].Series.UsedMemoryBytes) != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no sample within 25 s")
		}
		time.Sleep(500 * time.Millisecond)
	}
	r := runCLI(t, false, "", append([]string{"cluster", "metrics", "orders", "--range", "6h"}, sflags...)...)
	if r.err != nil {
		t.Fatal(r.err)
	}
	req := s.lastRequest(t, "GET", "/api/v1/clusters/orders/metrics")
	if req.Query != "range=6h" {
		t.Fatalf("query %q, want range=6h", req.Query)
	}
	m := decode[api.Metrics](t, req.Response)
	if len(m.Instances) == 0 || m.Range != "6h" {
		t.Fatalf("served %+v", m)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if got, want := len(lines), 1+7*len(m.Instances); got != want {
		t.Fatalf("%d lines, want %d:\n%s", got, want, r.stdout)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "INSTANCE SHARD ROLE SERIES LATEST AVG MAX" {
		t.Fatalf("header %q", lines[0])
	}
	// The memory line of the first instance, computed here from the answer.
	in := m.Instances[0]
	var sum, mx, latest float64
	n := 0
	for _, p := range in.Series.UsedMemoryBytes {
		if p != nil {
			latest, sum, n = *p, sum+*p, n+1
			mx = max(mx, *p)
		}
	}
	mib := func(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }
	want := []string{in.Name, fmt.Sprint(in.Shard), in.Role, "memory", mib(latest), mib(sum / float64(n)), mib(mx)}
	found := false
	for _, l := range lines {
		cols := strings.Split(strings.Join(strings.Fields(l), " "), " ")
		if len(cols) == 10 && cols[0] == in.Name && cols[3] == "memory" {
			found = true
			got := []string{cols[0], cols[1], cols[2], cols[3], cols[4] + " " + cols[5], cols[6] + " " + cols[7], cols[8] + " " + cols[9]}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("memory line %q, want %q", got, want)
			}
		}
	}
	if !found {
		t.Fatalf("no memory line for %s:\n%s", in.Name, r.stdout)
	}

	r = runCLI(t, false, "", append([]string{"cluster", "metrics", "orders", "-o", "json"}, sflags...)...)
	req = s.lastRequest(t, "GET", "/api/v1/clusters/orders/metrics")
	if r.err != nil || req.Query != "range=1h" || !jsonEqual(t, r.stdout, string(req.Response)) {
		t.Errorf("-o json (err %v, query %q):\n%.300s\nwant:\n%.300s", r.err, req.Query, r.stdout, req.Response)
	}

	r = runCLI(t, false, "", append([]string{"cluster", "metrics", "orders", "--range", "2h"}, sflags...)...)
	if r.err == nil || !strings.Contains(r.stderr, "range") {
		t.Errorf("--range 2h: err %v, stderr %q", r.err, r.stderr)
	}
}

func lastPoint(s []*float64) *float64 {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != nil {
			return s[i]
		}
	}
	return nil
}

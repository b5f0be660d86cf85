// Command connections measures the API under many idle or slow
// connections: health latency (a new connection per request) and the
// manager's open files, first with no other connection, then with N held
// open by clients that misbehave in four ways (N/4 each): idle keep-alive
// after one request, half a header, an unauthenticated POST that announces
// a body and never sends it, and an authenticated POST whose body trickles
// one byte a second. The same manager runs once with the default limits and
// once under a 200-file limit (prlimit), where the old server stopped
// accepting (`accept4: too many open files`).
//
//	go run ./bench/connections -bin bin/redis-manager -n 1000
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/bench/benchenv"
)

func main() {
	bin := flag.String("bin", "bin/redis-manager", "redis-manager binary")
	n := flag.Int("n", 1000, "misbehaving connections to hold open")
	base := flag.Int("port-base", 23600, "first port to use")
	flag.Parse()
	if err := run(*bin, *n, *base); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(bin string, n, base int) error {
	fmt.Printf("API under %d idle/slow connections (health: 200 requests, a new connection each)\n", n)
	fmt.Printf("%-34s %-10s %-10s %-10s %-8s %-11s %s\n", "case", "median", "p99", "max", "errors", "open files", "evicted/refused")
	for _, limit := range []int{0, 200} {
		m, err := startWithLimit(bin, base, limit)
		if err != nil {
			return err
		}
		label := "default file limit"
		if limit > 0 {
			label = fmt.Sprintf("%d-file limit", limit)
		}
		measure(m, label+", no other connection", nil)
		conns := misbehave(m, n)
		time.Sleep(1500 * time.Millisecond) // past the 1 s after which a stuck request may be closed
		measure(m, fmt.Sprintf("%s, %d held", label, n), conns)
		for _, c := range conns {
			c.Close()
		}
		m.Stop()
	}
	return nil
}

// startWithLimit starts the manager with a file limit of limit (0: this
// process's), as `ulimit -n` before the start would: its connection cap is
// derived from the limit it starts with. prlimit execs the manager, so the
// pid is the manager's.
func startWithLimit(bin string, base, limit int) (*benchenv.Manager, error) {
	if limit == 0 {
		return benchenv.Start(bin, base, 10)
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-connections-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	wrapper := filepath.Join(dir, "redis-manager")
	script := fmt.Sprintf("#!/bin/sh\nexec prlimit --nofile=%d:%d -- %s \"$@\"\n", limit, limit, abs)
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		return nil, err
	}
	return benchenv.Start(wrapper, base, 10)
}

func measure(m *benchenv.Manager, label string, _ []net.Conn) {
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var ds []time.Duration
	errs := 0
	for i := 0; i < 200; i++ {
		start := time.Now()
		resp, err := hc.Get(m.URL + "/api/v1/health")
		if err != nil {
			errs++
			if errs >= 10 && len(ds) == 0 {
				break // the server does not answer: no need for 200 timeouts
			}
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			errs++
			continue
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	q := func(p float64) string {
		if len(ds) == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fms", float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds())/1000)
	}
	fmt.Printf("%-34s %-10s %-10s %-10s %-8d %-11d %s\n", label, q(0.5), q(0.99), q(1), errs, openFiles(m.Pid()), counters(m))
}

// misbehave opens n connections that hold the server's resources.
func misbehave(m *benchenv.Manager, n int) []net.Conn {
	addr := strings.TrimPrefix(m.URL, "http://")
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			continue
		}
		conns = append(conns, c)
		switch i % 4 {
		case 0: // idle keep-alive after one request
			fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		case 1: // half a header
			fmt.Fprintf(c, "GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
		case 2: // unauthenticated, body announced, never sent
			fmt.Fprintf(c, "POST /api/v1/clusters HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
		case 3: // authenticated, body trickled a byte a second
			fmt.Fprintf(c, "POST /api/v1/clusters HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n", m.Token)
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				for j := 0; j < 60; j++ {
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}(c)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return conns
}

func openFiles(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

func counters(m *benchenv.Manager) string {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(m.URL + "/metrics")
	if err != nil {
		return "-"
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ev, rf string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "redis_manager_http_connections_evicted_total "); ok {
			ev = v
		}
		if v, ok := strings.CutPrefix(l, "redis_manager_http_connections_refused_total "); ok {
			rf = v
		}
	}
	return ev + "/" + rf
}

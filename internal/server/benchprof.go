//go:build benchprof

package server

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
)

// Only in binaries built with -tags benchprof (bench/scale -profile): serve
// net/http/pprof on REDIS_MANAGER_BENCH_PPROF (HOST:PORT), a listener of its
// own, so the benchmark can take a CPU profile of the manager at scale.
func init() {
	addr := os.Getenv("REDIS_MANAGER_BENCH_PPROF")
	if addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	go func() {
		if err := http.ListenAndServe(addr, mux); err != nil {
			fmt.Fprintln(os.Stderr, "bench: pprof:", err)
		}
	}()
}

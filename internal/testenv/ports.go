package testenv

import (
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

// FreePort returns a loopback port the OS says is free and that no other
// test of this process was given: tests boot servers in parallel, and the
// OS may hand out a port again as soon as it is closed.
func FreePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !given[port] {
			given[port] = true
			return port
		}
	}
}

// blocks are the port ranges PortRange gave to tests still running.
var blocks = map[int]int{} // lo -> hi

// PortRange returns a range of n ports that no running test of this
// process was given, with every port free now. It looks from
// REDIS_MANAGER_TEST_PORT_BASE (default 21000) upwards to 65000 and wraps
// around; a range is given back when the test ends. When the base lies in
// the OS's ephemeral port range, outgoing connections keep taking single
// ports, so a busy block is skipped and the search retried for up to a
// minute.
func PortRange(t testing.TB, n int) (lo, hi int) {
	t.Helper()
	base := 21000
	if v, err := strconv.Atoi(os.Getenv("REDIS_MANAGER_TEST_PORT_BASE")); err == nil {
		base = v
	}
	if base+n-1 > 65000 {
		t.Fatalf("REDIS_MANAGER_TEST_PORT_BASE %d leaves no room for %d ports", base, n)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		portsMu.Lock()
		lo = findBlock(base, n)
		if lo > 0 {
			hi = lo + n - 1
			blocks[lo] = hi
			portsMu.Unlock()
			t.Cleanup(func() {
				portsMu.Lock()
				delete(blocks, lo)
				portsMu.Unlock()
			})
			return lo, hi
		}
		portsMu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no block of %d free test ports from %d to 65000 for a minute", n, base)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// findBlock returns the first lo >= base of n free ports overlapping no
// given block, or 0. portsMu is held.
func findBlock(base, n int) int {
	for lo := base; lo+n-1 <= 65000; {
		hi := lo + n - 1
		overlap := 0
		for glo, ghi := range blocks {
			if glo <= hi && lo <= ghi {
				overlap = max(overlap, ghi)
			}
		}
		if overlap > 0 {
			lo = overlap + 1
			continue
		}
		busy := 0
		for p := lo; p <= hi; p++ {
			if given[p] {
				busy = p
				continue
			}
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				busy = p
				continue
			}
			l.Close()
		}
		if busy == 0 {
			return lo
		}
		lo = busy + 1
	}
	return 0
}

package local

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/redis-manager/redis-manager/internal/platform"
)

// ParseHostRange parses "A-B", two IPv4 loopback addresses, into every
// address from A to B. Each instance gets one of its own, so a packet
// filter can cut a single instance off.
func ParseHostRange(s string) ([]string, error) {
	a, b, ok := strings.Cut(s, "-")
	lo, err1 := netip.ParseAddr(strings.TrimSpace(a))
	hi, err2 := netip.ParseAddr(strings.TrimSpace(b))
	bad := fmt.Errorf("--host-range %q: want A-B, two IPv4 loopback addresses (127.x.y.z) with A <= B, at most 65536 apart", s)
	if !ok || err1 != nil || err2 != nil || !lo.Is4() || !hi.Is4() || !lo.IsLoopback() || !hi.IsLoopback() || hi.Less(lo) {
		return nil, bad
	}
	var out []string
	for ip := lo; ip.Compare(hi) <= 0; ip = ip.Next() {
		if len(out) == 1<<16 {
			return nil, bad
		}
		out = append(out, ip.String())
	}
	return out, nil
}

// Reserve implements platform.Platform. Without a host range every
// instance is on DefaultHost and gets the lowest port of the range that no
// taken endpoint holds and that can be bound now. With one, each instance
// gets the lowest address no taken endpoint uses, and on it the lowest
// such port.
func (p *Platform) Reserve(ctx context.Context, want []platform.Want, taken []platform.Endpoint) (map[platform.ID]platform.Endpoint, error) {
	p.reserveMu.Lock()
	defer p.reserveMu.Unlock()
	used := map[platform.Endpoint]bool{}
	usedHost := map[string]bool{}
	for _, e := range taken {
		used[e] = true
		usedHost[e.Host] = true
	}
	perInstance := len(p.opts.Hosts) > 0
	out := map[platform.ID]platform.Endpoint{}
	for _, w := range want {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		host := DefaultHost
		if perInstance {
			host = ""
			for _, h := range p.opts.Hosts {
				if !usedHost[h] {
					host = h
					break
				}
			}
			if host == "" {
				return nil, fmt.Errorf("no free address left in --host-range %s for %s: %w", p.opts.HostRange, w.ID.Name, platform.ErrNoCapacity)
			}
		}
		ep := platform.Endpoint{Host: host}
		for port := p.opts.PortLo; port <= p.opts.PortHi; port++ {
			e := platform.Endpoint{Host: host, Port: port}
			if !used[e] && endpointFree(e) {
				ep = e
				break
			}
		}
		if ep.Port == 0 {
			return nil, fmt.Errorf("no free port left in --port-range %d-%d for %s: %w", p.opts.PortLo, p.opts.PortHi, w.ID.Name, platform.ErrNoCapacity)
		}
		used[ep] = true
		usedHost[host] = true
		out[w.ID] = ep
	}
	return out, nil
}

// Capacity implements platform.Platform.
func (p *Platform) Capacity(taken []platform.Endpoint) platform.Capacity {
	if len(p.opts.Hosts) > 0 {
		usedHost := map[string]bool{}
		for _, e := range taken {
			usedHost[e.Host] = true
		}
		free := 0
		for _, h := range p.opts.Hosts {
			if !usedHost[h] {
				free++
			}
		}
		return platform.Capacity{Free: free, Total: len(p.opts.Hosts), Unit: "addresses", Limit: "--host-range " + p.opts.HostRange}
	}
	size := p.opts.PortHi - p.opts.PortLo + 1
	return platform.Capacity{Free: max(size-len(taken), 0), Total: size, Unit: "ports", Limit: fmt.Sprintf("--port-range %d-%d", p.opts.PortLo, p.opts.PortHi)}
}

// endpointFree tells whether the endpoint can be bound now.
func endpointFree(e platform.Endpoint) bool {
	l, err := net.Listen("tcp", e.String())
	if err != nil {
		return false
	}
	l.Close()
	return true
}

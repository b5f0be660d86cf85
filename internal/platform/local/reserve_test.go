package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func TestParseHostRange(t *testing.T) {
	t.Parallel()
	got, err := ParseHostRange("127.0.1.254-127.0.2.1")
	if want := []string{"127.0.1.254", "127.0.1.255", "127.0.2.0", "127.0.2.1"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseHostRange = %v, %v, want %v", got, err, want)
	}
	if got, err := ParseHostRange(" 127.0.1.1 - 127.0.1.1 "); err != nil || len(got) != 1 {
		t.Errorf("one address: %v, %v", got, err)
	}
	for _, bad := range []string{"", "127.0.1.1", "127.0.1.9-127.0.1.1", "10.0.0.1-10.0.0.9", "::1-::2", "127.0.0.1-127.2.0.0", "a-b"} {
		if _, err := ParseHostRange(bad); err == nil || !strings.Contains(err.Error(), "--host-range") {
			t.Errorf("ParseHostRange(%q) = %v, want an error naming --host-range", bad, err)
		}
	}
}

func wants(names ...string) []platform.Want {
	var out []platform.Want
	for _, n := range names {
		out = append(out, platform.Want{ID: platform.ID{Cluster: "c", Name: n}, Kind: platform.KindRedis})
	}
	return out
}

// Without a host range: lowest free ports on 127.0.0.1, skipping taken
// endpoints and ports another program holds; capacity counts the range.
func TestReservePorts(t *testing.T) {
	t.Parallel()
	lo, _ := testenv.PortRange(t, 5)
	p, err := New(t.TempDir(), "", Options{PortLo: lo, PortHi: lo + 4}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	held, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", lo+1))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := []platform.Endpoint{{Host: DefaultHost, Port: lo}}
	got, err := p.Reserve(context.Background(), wants("a", "b"), taken)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := got[platform.ID{Cluster: "c", Name: "a"}], got[platform.ID{Cluster: "c", Name: "b"}]; a != (platform.Endpoint{Host: DefaultHost, Port: lo + 2}) || b != (platform.Endpoint{Host: DefaultHost, Port: lo + 3}) {
		t.Errorf("Reserve = %v, want a on %d, b on %d", got, lo+2, lo+3)
	}
	if c := p.Capacity(taken); c != (platform.Capacity{Free: 4, Total: 5, Unit: "ports", Limit: fmt.Sprintf("--port-range %d-%d", lo, lo+4)}) {
		t.Errorf("Capacity = %+v", c)
	}
	// lo is taken and lo+1 held: a, b, c fit, d does not.
	_, err = p.Reserve(context.Background(), wants("a", "b", "c", "d"), taken)
	if !errors.Is(err, platform.ErrNoCapacity) || !strings.Contains(err.Error(), "no free port") || !strings.Contains(err.Error(), " d:") {
		t.Errorf("Reserve beyond the range: %v, want ErrNoCapacity naming d", err)
	}
}

// With a host range: each instance its own address, the same port where
// free; capacity counts the addresses.
func TestReserveHosts(t *testing.T) {
	t.Parallel()
	port, _ := testenv.PortRange(t, 1)
	hosts, err := ParseHostRange("127.0.1.1-127.0.1.3")
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(t.TempDir(), "", Options{PortLo: port, PortHi: port, Hosts: hosts, HostRange: "127.0.1.1-127.0.1.3"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	taken := []platform.Endpoint{{Host: "127.0.1.2", Port: port}}
	got, err := p.Reserve(context.Background(), wants("a", "b"), taken)
	if err != nil {
		t.Fatal(err)
	}
	want := map[platform.ID]platform.Endpoint{
		{Cluster: "c", Name: "a"}: {Host: "127.0.1.1", Port: port},
		{Cluster: "c", Name: "b"}: {Host: "127.0.1.3", Port: port},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Reserve = %v, want %v", got, want)
	}
	if c := p.Capacity(taken); c != (platform.Capacity{Free: 2, Total: 3, Unit: "addresses", Limit: "--host-range 127.0.1.1-127.0.1.3"}) {
		t.Errorf("Capacity = %+v", c)
	}
	_, err = p.Reserve(context.Background(), wants("a", "b", "c"), taken)
	if !errors.Is(err, platform.ErrNoCapacity) || !strings.Contains(err.Error(), "no free address left in --host-range") {
		t.Errorf("Reserve beyond the hosts: %v", err)
	}
}

package controller

import (
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/platform"
)

func TestForceOnDeath(t *testing.T) {
	t.Parallel()
	certain := platform.InstanceEvent{Type: platform.EventExited, Certain: true}
	suspected := platform.InstanceEvent{Type: platform.EventExited}
	on := api.ClusterSpec{FastFailover: true, Replicas: 2}
	tests := []struct {
		name string
		ev   platform.InstanceEvent
		spec api.ClusterSpec
		ok   bool
		why  string
	}{
		{"certain death, fast failover on", certain, on, true, ""},
		{"suspected death waits for Sentinel", suspected, on, false, "only suspects"},
		{"fast failover off", certain, api.ClusterSpec{Replicas: 2}, false, ""},
		{"no replica to promote", certain, api.ClusterSpec{FastFailover: true}, false, ""},
		{"not a death", platform.InstanceEvent{Type: "restarted", Certain: true}, on, false, "not a death"},
	}
	for _, tc := range tests {
		ok, why := forceOnDeath(tc.ev, tc.spec)
		if ok != tc.ok || (tc.why == "") != (why == "") || !strings.Contains(why, tc.why) {
			t.Errorf("%s: forceOnDeath = %v, %q; want %v, %q", tc.name, ok, why, tc.ok, tc.why)
		}
	}
}

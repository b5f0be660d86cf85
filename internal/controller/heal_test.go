package controller

import (
	"fmt"
	"testing"
	"time"
)

func TestSentinelChoice(t *testing.T) {
	t.Parallel()
	rep := func(port, priority, offset int, runid, flags string) map[string]string {
		return map[string]string{"ip": "127.0.0.1", "port": fmt.Sprint(port), "flags": flags, "slave-priority": fmt.Sprint(priority),
			"slave-repl-offset": fmt.Sprint(offset), "runid": runid, "last-ok-ping-reply": "100", "info-refresh": "200"}
	}
	validity := 3 * time.Second
	tests := []struct {
		name string
		view []map[string]string
		want string
	}{
		{"highest offset wins", []map[string]string{rep(1, 100, 10, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:2"},
		{"lower priority beats offset", []map[string]string{rep(1, 50, 10, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:1"},
		{"priority 0 never", []map[string]string{rep(1, 0, 99, "a", "slave"), rep(2, 100, 30, "b", "slave")}, "127.0.0.1:2"},
		{"down or disconnected skipped", []map[string]string{rep(1, 100, 99, "a", "slave,s_down"), rep(2, 100, 98, "b", "slave,disconnected"), rep(3, 100, 1, "c", "slave")}, "127.0.0.1:3"},
		{"equal offsets: lowest run id", []map[string]string{rep(1, 100, 10, "b", "slave"), rep(2, 100, 10, "a", "slave")}, "127.0.0.1:2"},
		{"stale INFO skipped", func() []map[string]string {
			stale := rep(1, 100, 99, "a", "slave")
			stale["info-refresh"] = "5000"
			return []map[string]string{stale, rep(2, 100, 1, "b", "slave")}
		}(), "127.0.0.1:2"},
		{"no candidate", []map[string]string{rep(1, 0, 10, "a", "slave")}, ""},
	}
	for _, tc := range tests {
		if got := sentinelChoice(tc.view, validity); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPlanHeal(t *testing.T) {
	t.Parallel()
	names := func(p healPlan) string {
		var r, w, d []string
		for _, in := range p.Restart {
			r = append(r, in.Name)
		}
		for _, in := range p.Waiting {
			w = append(w, in.Name)
		}
		for _, x := range p.Demote {
			d = append(d, x.In.Name+"->"+x.Master)
		}
		return fmt.Sprint("restart", r, " waiting", w, " demote", d)
	}
	all := func(s observation) map[string]bool {
		m := map[string]bool{}
		for _, ro := range s.Redis {
			m[ro.In.Name] = true
		}
		for _, so := range s.Sentinels {
			m[so.In.Name] = true
		}
		return m
	}
	master := fxAddr(fxRedisPort(0, 0))
	tests := []struct {
		name string
		mod  func(obs *observation, running map[string]bool)
		want string
	}{
		{"healthy: nothing to do", func(*observation, map[string]bool) {}, "restart[] waiting[] demote[]"},
		{"dead replica restarts", func(obs *observation, running map[string]bool) {
			obs.Redis[1].Up = false
			running["orders-0-1"] = false
		}, "restart[orders-0-1] waiting[] demote[]"},
		{"a replica that runs but does not answer is left alone", func(obs *observation, _ map[string]bool) {
			obs.Redis[1].Up = false
		}, "restart[] waiting[] demote[]"},
		{"dead master still named by a Sentinel waits for its failover", func(obs *observation, running map[string]bool) {
			obs.Redis[0].Up = false
			running["orders-0-0"] = false
		}, "restart[] waiting[orders-0-0] demote[]"},
		{"dead old master no Sentinel names restarts", func(obs *observation, running map[string]bool) {
			obs.Redis[0].Up = false
			running["orders-0-0"] = false
			for i := range obs.Sentinels {
				m := obs.Sentinels[i].View["orders-0"]
				m.Addr = fxAddr(fxRedisPort(0, 1))
				obs.Sentinels[i].View["orders-0"] = m
			}
			obs.Redis[1].Info["role"] = "master"
		}, "restart[orders-0-0] waiting[] demote[]"},
		{"dead Sentinel restarts", func(obs *observation, running map[string]bool) {
			obs.Sentinels[2].Up = false
			running["orders-sentinel-2"] = false
		}, "restart[orders-sentinel-2] waiting[] demote[]"},
		{"second master demoted against settled Sentinels", func(obs *observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
		}, "restart[] waiting[] demote[orders-0-2->" + master + "]"},
		{"no demotion while one Sentinel disagrees", func(obs *observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
			m := obs.Sentinels[1].View["orders-0"]
			m.Addr = fxAddr(fxRedisPort(0, 2))
			obs.Sentinels[1].View["orders-0"] = m
		}, "restart[] waiting[] demote[]"},
		{"no demotion while a failover is in progress", func(obs *observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
			m := obs.Sentinels[0].View["orders-0"]
			m.Flags = []string{"master", "failover_in_progress"}
			obs.Sentinels[0].View["orders-0"] = m
		}, "restart[] waiting[] demote[]"},
		{"no demotion without a quorum of Sentinels answering", func(obs *observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
			obs.Sentinels[0].Up, obs.Sentinels[1].Up = false, false
		}, "restart[] waiting[] demote[]"},
	}
	for _, tc := range tests {
		s, obs := fxCluster(1, 2, 3)
		running := all(obs)
		tc.mod(&obs, running)
		if got := names(planHeal(s, "orders", obs, running)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

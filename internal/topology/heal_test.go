package topology

import (
	"fmt"
	"testing"
)

func TestPlanHeal(t *testing.T) {
	t.Parallel()
	names := func(p HealPlan) string {
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
	all := func(s Observation) map[string]bool {
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
		mod  func(obs *Observation, running map[string]bool)
		want string
	}{
		{"healthy: nothing to do", func(*Observation, map[string]bool) {}, "restart[] waiting[] demote[]"},
		{"dead replica restarts", func(obs *Observation, running map[string]bool) {
			obs.Redis[1].Up = false
			running["orders-0-1"] = false
		}, "restart[orders-0-1] waiting[] demote[]"},
		{"a replica that runs but does not answer is left alone", func(obs *Observation, _ map[string]bool) {
			obs.Redis[1].Up = false
		}, "restart[] waiting[] demote[]"},
		{"dead master still named by a Sentinel waits for its failover", func(obs *Observation, running map[string]bool) {
			obs.Redis[0].Up = false
			running["orders-0-0"] = false
		}, "restart[] waiting[orders-0-0] demote[]"},
		{"dead old master no Sentinel names restarts", func(obs *Observation, running map[string]bool) {
			obs.Redis[0].Up = false
			running["orders-0-0"] = false
			for i := range obs.Sentinels {
				m := obs.Sentinels[i].View["orders-0"]
				m.Addr = fxAddr(fxRedisPort(0, 1))
				obs.Sentinels[i].View["orders-0"] = m
			}
			obs.Redis[1].Info["role"] = "master"
		}, "restart[orders-0-0] waiting[] demote[]"},
		{"dead Sentinel restarts", func(obs *Observation, running map[string]bool) {
			obs.Sentinels[2].Up = false
			running["orders-sentinel-2"] = false
		}, "restart[orders-sentinel-2] waiting[] demote[]"},
		{"second master demoted against settled Sentinels", func(obs *Observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
		}, "restart[] waiting[] demote[orders-0-2->" + master + "]"},
		{"no demotion while one Sentinel disagrees", func(obs *Observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
			m := obs.Sentinels[1].View["orders-0"]
			m.Addr = fxAddr(fxRedisPort(0, 2))
			obs.Sentinels[1].View["orders-0"] = m
		}, "restart[] waiting[] demote[]"},
		{"no demotion while a failover is in progress", func(obs *Observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
			m := obs.Sentinels[0].View["orders-0"]
			m.Flags = []string{"master", "failover_in_progress"}
			obs.Sentinels[0].View["orders-0"] = m
		}, "restart[] waiting[] demote[]"},
		{"no demotion while one Sentinel sees the master down", func(obs *Observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
			m := obs.Sentinels[2].View["orders-0"]
			m.Flags = []string{"master", "s_down"}
			obs.Sentinels[2].View["orders-0"] = m
		}, "restart[] waiting[] demote[]"},
		// The unified FailingOver also counts a named master that does not
		// answer; a plan cannot demote against it anyway (it is not up), so
		// the plan is the same as before.
		{"named master does not answer: it waits, nothing is demoted", func(obs *Observation, running map[string]bool) {
			obs.Redis[0].Up = false
			running["orders-0-0"] = false
			obs.Redis[2].Info["role"] = "master"
		}, "restart[] waiting[orders-0-0] demote[]"},
		{"no demotion without a quorum of Sentinels answering", func(obs *Observation, _ map[string]bool) {
			obs.Redis[2].Info["role"] = "master"
			obs.Sentinels[0].Up, obs.Sentinels[1].Up = false, false
		}, "restart[] waiting[] demote[]"},
	}
	for _, tc := range tests {
		s, obs := fxCluster(1, 2, 3)
		running := all(obs)
		tc.mod(&obs, running)
		if got := names(PlanHeal(s, "orders", obs, running)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

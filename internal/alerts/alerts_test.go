package alerts

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
)

func ptr[T any](v T) *T { return &v }

func healthy() Input {
	master := api.InstanceStatus{Name: "c-0-0", Address: "h:1", Role: "master", Up: true, UsedMemoryBytes: 10, MaxmemoryBytes: 100, ConnectedClients: 5, MaxClients: 100}
	replica := api.InstanceStatus{Name: "c-0-1", Address: "h:2", Role: "replica", Up: true, MasterLinkStatus: "up"}
	return Input{Cluster: "c", Spec: api.ClusterSpec{Shards: 1, Replicas: 1, Sentinels: 3},
		Status: api.ClusterStatus{Phase: api.PhaseReady,
			Shards:    []api.ShardStatus{{Index: 0, SentinelName: "c-0", Master: &master, Replicas: []api.InstanceStatus{replica}}},
			Sentinels: []api.SentinelStatus{{Name: "s0", Up: true}, {Name: "s1", Up: true}, {Name: "s2", Up: true}}},
		Now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
}

func TestConditions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		change    func(in *Input)
		overrides api.AlertRules
		want      []string // rule/instance
	}{
		{"healthy", func(*Input) {}, nil, nil},
		{"replica down", func(in *Input) { in.Status.Shards[0].Replicas[0].Up = false }, nil, []string{"instance-down/c-0-1"}},
		{"master down", func(in *Input) { in.Status.Shards[0].Master.Up = false }, nil, []string{"instance-down/c-0-0", "no-master/"}},
		{"no master named", func(in *Input) { in.Status.Shards[0].Master = nil }, nil, []string{"no-master/"}},
		{"two masters", func(in *Input) { in.Status.Shards[0].Replicas[0].Role = "master" }, nil, []string{"two-masters/"}},
		{"link down", func(in *Input) { in.Status.Shards[0].Replicas[0].MasterLinkStatus = "down" }, nil, []string{"replica-link-down/c-0-1"}},
		{"lag", func(in *Input) { in.Status.Shards[0].Replicas[0].LagBytes = 11 << 20 }, nil, []string{"replica-lag/c-0-1"}},
		{"lag under an override", func(in *Input) { in.Status.Shards[0].Replicas[0].LagBytes = 11 << 20 },
			api.AlertRules{"replica-lag": {Threshold: ptr(20.0 * (1 << 20))}}, nil},
		{"memory 91 %", func(in *Input) { in.Status.Shards[0].Master.UsedMemoryBytes = 91 }, nil, []string{"memory-high/c-0-0"}},
		{"memory 91 %, rule off", func(in *Input) { in.Status.Shards[0].Master.UsedMemoryBytes = 91 },
			api.AlertRules{"memory-high": {Enabled: ptr(false)}}, nil},
		{"memory without maxmemory", func(in *Input) {
			in.Status.Shards[0].Master.UsedMemoryBytes, in.Status.Shards[0].Master.MaxmemoryBytes = 1<<30, 0
		}, nil, nil},
		{"memory 60 % under threshold 50", func(in *Input) { in.Status.Shards[0].Master.UsedMemoryBytes = 60 },
			api.AlertRules{"memory-high": {Threshold: ptr(50.0)}}, []string{"memory-high/c-0-0"}},
		{"connections", func(in *Input) { in.Status.Shards[0].Master.ConnectedClients = 95 }, nil, []string{"connections-high/c-0-0"}},
		{"slow fork", func(in *Input) { in.Status.Shards[0].Master.LatestForkUsec = 600_000 }, nil, []string{"slow-fork/c-0-0"}},
		{"two of three Sentinels down", func(in *Input) {
			in.Status.Sentinels[0].Up, in.Status.Sentinels[1].Up = false, false
		}, nil, []string{"sentinel-quorum/"}},
		{"a Sentinel in TILT", func(in *Input) { in.Status.Sentinels[2].Tilt = true }, nil, []string{"sentinel-tilt/s2"}},
		{"a failover 10 s ago", func(in *Input) {
			in.Events = []api.Event{{Type: "failover", Shard: ptr(0), At: in.Now.Add(-10 * time.Second), Message: "switch"},
				{Type: "failover", Shard: ptr(0), At: in.Now.Add(-20 * time.Second), Message: "older"}}
		}, nil, []string{"failover/"}},
		{"a failover 2 min ago", func(in *Input) {
			in.Events = []api.Event{{Type: "failover", Shard: ptr(0), At: in.Now.Add(-2 * time.Minute), Message: "switch"}}
		}, nil, nil},
		{"one of three Sentinels down", func(in *Input) { in.Status.Sentinels[0].Up = false }, nil, nil},
		{"newest backup failed", func(in *Input) {
			in.Backups = []api.Backup{{ID: "b2", State: api.StateFailed, Error: "disk"}, {ID: "b1", State: api.StateSucceeded}}
		}, nil, []string{"backup-failed/"}},
		{"failed backup followed by a success", func(in *Input) {
			in.Backups = []api.Backup{{ID: "b2", State: api.StateSucceeded}, {ID: "b1", State: api.StateFailed}}
		}, nil, nil},
		{"backup missing", func(in *Input) {
			done := in.Now.Add(-49 * time.Hour)
			in.Schedule, in.Period, in.ScheduleCreated = "0 3 * * *", 24*time.Hour, in.Now.Add(-72*time.Hour)
			in.Backups = []api.Backup{{ID: "b1", State: api.StateSucceeded, FinishedAt: &done}}
		}, nil, []string{"backup-missing/"}},
		{"backup recent", func(in *Input) {
			done := in.Now.Add(-47 * time.Hour)
			in.Schedule, in.Period, in.ScheduleCreated = "0 3 * * *", 24*time.Hour, in.Now.Add(-72*time.Hour)
			in.Backups = []api.Backup{{ID: "b1", State: api.StateSucceeded, FinishedAt: &done}}
		}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := healthy()
			tt.change(&in)
			var got []string
			for _, c := range Conditions(in, Effective(tt.overrides)) {
				got = append(got, c.Rule+"/"+c.Instance)
				if c.Message == "" {
					t.Errorf("%s has no message", c.Rule)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("conditions %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStep(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	settings := Effective(api.AlertRules{"instance-down": {ForMs: ptr(int64(5000))}})
	down := []Condition{{Rule: "instance-down", Shard: ptr(0), Instance: "c-0-1", Value: 1, Message: "down"}}
	var stored []api.Alert
	apply := func(ch []Change) {
		for _, c := range ch {
			kept := stored[:0]
			for _, a := range stored {
				if a.Rule != c.Alert.Rule || a.Instance != c.Alert.Instance {
					kept = append(kept, a)
				}
			}
			stored = kept
			if !c.Delete {
				stored = append(stored, c.Alert)
			}
		}
	}
	step := func(at time.Duration, conds []Condition) []Change {
		ch := Step("c", stored, conds, settings, Severity, t0.Add(at))
		apply(ch)
		return ch
	}
	expect := func(ch []Change, state, from string, notify bool) {
		t.Helper()
		if len(ch) != 1 || ch[0].Alert.State != state || ch[0].From != from || ch[0].Notify != notify {
			t.Fatalf("changes %+v, want one to %s from %q notify=%v", ch, state, from, notify)
		}
	}
	expect(step(0, down), api.AlertPending, "", false)
	if ch := step(4*time.Second, down); len(ch) != 0 {
		t.Fatalf("before for: %+v", ch)
	}
	expect(step(5*time.Second, down), api.AlertFiring, api.AlertPending, true)
	if ch := step(6*time.Second, down); len(ch) != 0 {
		t.Fatalf("firing again: %+v, want no change (one notification per transition)", ch)
	}
	expect(step(7*time.Second, nil), api.AlertResolved, api.AlertFiring, true)
	if stored[0].ActiveAt != t0 || stored[0].Since != t0.Add(7*time.Second) {
		t.Fatalf("resolved alert %+v: activeAt and since", stored[0])
	}
	if ch := step(8*time.Second, nil); len(ch) != 0 {
		t.Fatalf("resolved again: %+v", ch)
	}
	// It comes back: a new pending alert, which ends before firing.
	expect(step(9*time.Second, down), api.AlertPending, api.AlertResolved, false)
	ch := step(10*time.Second, nil)
	if len(ch) != 1 || !ch[0].Delete || ch[0].Notify {
		t.Fatalf("pending that ended: %+v, want deleted without notification", ch)
	}
	// for 0 fires at once.
	expect(Step("c", nil, []Condition{{Rule: "backup-failed", Shard: ptr(0)}}, settings, Severity, t0), api.AlertFiring, "", true)
	// A resolved alert is dropped after KeepResolved.
	old := []api.Alert{{Rule: "slow-fork", Cluster: "c", State: api.AlertResolved, Since: t0}}
	if ch := Step("c", old, nil, settings, Severity, t0.Add(KeepResolved)); len(ch) != 1 || !ch[0].Delete {
		t.Fatalf("old resolved alert: %+v", ch)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		o     api.AlertRules
		field string
	}{
		{api.AlertRules{"instance-down": {ForMs: ptr(int64(5000))}, "memory-high": {Threshold: ptr(90.0), ForMs: ptr(int64(120000))}, "replica-lag": {Enabled: ptr(false)}}, ""},
		{api.AlertRules{"no-such": {}}, "no-such"},
		{api.AlertRules{"memory-high": {Threshold: ptr(101.0)}}, "memory-high.threshold"},
		{api.AlertRules{"memory-high": {Threshold: ptr(0.0)}}, "memory-high.threshold"},
		{api.AlertRules{"instance-down": {Threshold: ptr(3.0)}}, "instance-down.threshold"},
		{api.AlertRules{"instance-down": {ForMs: ptr(int64(-1))}}, "instance-down.forMs"},
	} {
		err := Validate(tt.o)
		var fe *FieldError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%v: %v", tt.o, err)
		case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
			t.Errorf("%v: %v, want a field error on %s", tt.o, err, tt.field)
		}
	}
}

func TestBodyAndSignature(t *testing.T) {
	t.Parallel()
	note := api.Notification{Alert: api.Alert{Rule: "instance-down", Cluster: "c", Instance: "c-0-1", State: api.AlertFiring, Message: "down"},
		Transition: api.AlertFiring, URL: "http://m/clusters/c"}
	b, err := Body(api.WebhookJSON, note)
	if err != nil {
		t.Fatal(err)
	}
	var back api.Notification
	if err := json.Unmarshal(b, &back); err != nil || back.Rule != "instance-down" || back.URL != note.URL || back.Transition != "firing" {
		t.Fatalf("json body %s: %v", b, err)
	}
	m := hmac.New(sha256.New, []byte("s3cret"))
	m.Write(b)
	if got, want := Sign("s3cret", b), "sha256="+hex.EncodeToString(m.Sum(nil)); got != want {
		t.Fatalf("Sign %s, want %s", got, want)
	}
	s, _ := Body(api.WebhookSlack, note)
	var slack map[string]string
	if err := json.Unmarshal(s, &slack); err != nil || len(slack) != 1 || !strings.Contains(slack["text"], "[FIRING] instance-down c c-0-1: down") {
		t.Fatalf("slack body %s", s)
	}
	if err := ValidateWebhooks([]api.Webhook{{Name: "x", URL: "file:///etc/passwd", Secret: "s", Format: "json"}}); err == nil || !strings.Contains(err.Error(), "webhooks[0].url") {
		t.Fatalf("file URL: %v", err)
	}
}

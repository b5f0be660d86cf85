package service

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
)

func TestParseMaxAge(t *testing.T) {
	t.Parallel()
	ms := func(n int64) *int64 { return &n }
	for _, tc := range []struct {
		s    string
		ms   *int64
		want time.Duration
		err  string
	}{
		{"", nil, 0, ""},
		{"168h", nil, 168 * time.Hour, ""},
		{"7d", nil, 168 * time.Hour, ""},
		{"1.5d", nil, 36 * time.Hour, ""},
		{"", ms(60000), time.Minute, ""},
		{"1m", ms(60000), time.Minute, ""},
		{"1m", ms(1000), 0, "maxAgeMs"},
		{"week", nil, 0, "maxAge"},
		{"-1h", nil, 0, "maxAge"},
		{"", ms(-1), 0, "maxAgeMs"},
	} {
		got, err := parseMaxAge(tc.s, tc.ms)
		var fe *spec.FieldError
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseMaxAge(%q, %v) = %s, %v; want %s", tc.s, tc.ms, got, err, tc.want)
		case tc.err != "" && (!errors.As(err, &fe) || fe.Field != tc.err):
			t.Errorf("parseMaxAge(%q, %v) = %v, want an error on field %s", tc.s, tc.ms, err, tc.err)
		}
	}
}

func TestRestoreCreateRequest(t *testing.T) {
	t.Parallel()
	src := api.ClusterSpec{Shards: 3, Replicas: 2, Sentinels: 5, Maxmemory: "256mb", MaxmemoryPolicy: "allkeys-lru",
		Persistence: "aof", Config: map[string]string{"hz": "20"},
		Sentinel:     api.SentinelSettings{DownAfterMs: 3000, FailoverTimeoutMs: 20000, ParallelSyncs: 2},
		FastFailover: false, MinReplicasToWrite: 2}

	got, err := spec.FromCreateRequest(restoreCreateRequest(&src, 3, api.RestoreRequest{Cluster: "copy"}))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(src) {
		t.Errorf("spec of a plain restore:\n got %+v\nwant %+v (the source's)", got, src)
	}
	// The request's fields replace the source's; the shard count is the set's.
	one, zero, mem := 1, 0, "1gb"
	got, err = spec.FromCreateRequest(restoreCreateRequest(&src, 1, api.RestoreRequest{Cluster: "copy", Replicas: &zero, Sentinels: &one, Maxmemory: &mem}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Shards != 1 || got.Replicas != 0 || got.Sentinels != 1 || got.Maxmemory != "1gb" || got.MinReplicasToWrite != 0 || got.Config["hz"] != "20" {
		t.Errorf("spec with replacements: %+v", got)
	}
	// Without a source spec (an imported backup of an old manager): defaults.
	got, err = spec.FromCreateRequest(restoreCreateRequest(nil, 2, api.RestoreRequest{Cluster: "copy"}))
	if err != nil || got.Shards != 2 || got.Replicas != spec.DefaultReplicas || got.Sentinels != spec.DefaultSentinels {
		t.Errorf("spec without a source: %+v, %v", got, err)
	}
	// The copy does not share the source's config map.
	req := restoreCreateRequest(&src, 3, api.RestoreRequest{Cluster: "copy"})
	req.Config["hz"] = "5"
	if src.Config["hz"] != "20" {
		t.Error("restoreCreateRequest shares the source's config map")
	}
}

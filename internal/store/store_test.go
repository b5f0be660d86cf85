package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// engine gives each test a fresh, empty database.
type engine struct {
	name string
	dsn  func(t *testing.T) string
}

var engines = []engine{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "manager.db") }},
	{"mariadb", func(t *testing.T) string { return testenv.StartMariaDB(t) }},
}

// env is one open store on a fresh database.
type env struct {
	dsn     string
	keyFile string
	s       *sqlStore
}

func newEnv(t *testing.T, eng engine) *env {
	t.Helper()
	dsn := eng.dsn(t)
	keyFile := filepath.Join(t.TempDir(), "keys", "store.key")
	st, err := Open(t.Context(), dsn, keyFile)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{dsn: dsn, keyFile: keyFile, s: st.(*sqlStore)}
}

// The same table runs against every engine.
var storeTests = []struct {
	name string
	fn   func(t *testing.T, e *env)
}{
	{"clusters", testClusters},
	{"duplicate cluster name", testDuplicateCluster},
	{"passwords encrypted at rest", testPasswordsEncrypted},
	{"password rotation", testRotation},
	{"cluster revisions", testClusterRevs},
	{"admission serializes", testAdmit},
	{"instances", testInstances},
	{"one unfinished job per cluster", testJobConflict},
	{"concurrent CreateJob", testConcurrentCreateJob},
	{"job round trip", testJobRoundTrip},
	{"job lists", testJobLists},
	{"events", testEvents},
	{"times are UTC", testTimesUTC},
	{"migrations idempotent", testMigrationsIdempotent},
	{"migration 4 keeps instances", testMigration4},
	{"wrong key", testWrongKey},
}

func TestStore(t *testing.T) {
	t.Parallel()
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range storeTests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, newEnv(t, eng))
				})
			}
		})
	}
}

// base is a fixed time in the past with microseconds, the store's precision.
var base = time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)

func testCluster(name string) Cluster {
	return Cluster{
		Name: name,
		Spec: api.ClusterSpec{
			Shards: 2, Replicas: 1, Sentinels: 3, Maxmemory: "100mb",
			Config:   map[string]string{"appendonly": "yes"},
			Sentinel: api.SentinelSettings{DownAfterMs: 5000, FailoverTimeoutMs: 60000, ParallelSyncs: 1},
		},
		Status:           api.ClusterStatus{Phase: api.PhaseCreating},
		Password:         "pw-" + name + "-Zq9!x",
		SentinelPassword: "spw-" + name + "-Kw7#y",
		CreatedAt:        base,
	}
}

func testJob(id, cluster, kind string, created time.Time) Job {
	return Job{Job: api.Job{ID: id, Kind: kind, Cluster: cluster, State: api.StatePending, CreatedAt: created}}
}

func mustCreate(t *testing.T, e *env, c Cluster) {
	t.Helper()
	if err := e.s.CreateClusterWithJob(t.Context(), c, testJob("create-"+c.Name, c.Name, api.JobCreate, base)); err != nil {
		t.Fatal(err)
	}
}

// testClusterRevs: every write of a cluster's row gives it a new
// revision (what the API's cluster cache relies on to never answer a
// stale cluster); reads leave it; ClusterRevs and GetClusters read the
// same revisions as GetCluster.
func testClusterRevs(t *testing.T, e *env) {
	ctx := t.Context()
	for _, n := range []string{"b", "a", "c"} {
		mustCreate(t, e, testCluster(n))
	}
	rev := func(name string) int64 {
		t.Helper()
		c, err := e.s.GetCluster(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return c.Rev
	}
	revs, err := e.s.ClusterRevs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 3 || revs[0].Name != "a" || revs[1].Name != "b" || revs[2].Name != "c" {
		t.Fatalf("ClusterRevs = %+v, want a, b, c by name", revs)
	}
	seen := map[int64]bool{}
	for _, r := range revs {
		if r.Rev == 0 || seen[r.Rev] || r.Rev != rev(r.Name) {
			t.Errorf("%s: revision %d (GetCluster: %d), want a new non-zero one", r.Name, r.Rev, rev(r.Name))
		}
		seen[r.Rev] = true
	}
	cls, err := e.s.GetClusters(ctx, []string{"c", "missing", "a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cls) != 2 || cls[0].Name != "a" || cls[1].Name != "c" || cls[0].Rev != revs[0].Rev || cls[1].Rev != revs[2].Rev ||
		cls[0].Password != "pw-a-Zq9!x" {
		t.Errorf("GetClusters(c, missing, a) = %d clusters %v, want a and c with their revisions and passwords", len(cls), names(cls))
	}
	if cls, err := e.s.GetClusters(ctx, nil); err != nil || len(cls) != 0 {
		t.Errorf("GetClusters(nil) = %v, %v", cls, err)
	}
	writes := []struct {
		what string
		do   func() error
	}{
		{"spec", func() error { return e.s.UpdateClusterSpec(ctx, "b", api.ClusterSpec{Shards: 4}) }},
		{"status", func() error { return e.s.UpdateClusterStatus(ctx, "b", api.ClusterStatus{Phase: api.PhaseReady}) }},
		{"the same status again", func() error { return e.s.UpdateClusterStatus(ctx, "b", api.ClusterStatus{Phase: api.PhaseReady}) }},
		{"rotation start", func() error {
			return e.s.StartRotation(ctx, "b", "next-pw", "next-spw", testJob("rot-b", "b", api.JobRotateCredentials, base))
		}},
		{"rotation", func() error { return e.s.SetRotation(ctx, "b", "next-pw", "next-spw", Rotation{Old: "pw-b-Zq9!x"}) }},
	}
	if err := e.s.UpdateJob(ctx, Job{Job: api.Job{ID: "create-b", Kind: api.JobCreate, Cluster: "b", State: api.StateSucceeded, CreatedAt: base, FinishedAt: &base}}); err != nil {
		t.Fatal(err)
	}
	specRev := func(name string) int64 {
		t.Helper()
		revs, err := e.s.ClusterRevs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range revs {
			if r.Name == name {
				return r.SpecRev
			}
		}
		t.Fatalf("%s not in ClusterRevs", name)
		return 0
	}
	for _, w := range writes {
		before, beforeSpec, other, otherSpec := rev("b"), specRev("b"), rev("a"), specRev("a")
		if beforeSpec == 0 {
			t.Errorf("before writing the %s the spec revision is 0", w.what)
		}
		if err := w.do(); err != nil {
			t.Fatalf("%s: %v", w.what, err)
		}
		if after := rev("b"); after == before || after == 0 {
			t.Errorf("after writing the %s the revision is still %d", w.what, after)
		}
		// Only a status write leaves the spec revision.
		status := strings.Contains(w.what, "status")
		if afterSpec := specRev("b"); (afterSpec == beforeSpec) != status || afterSpec == 0 {
			t.Errorf("after writing the %s the spec revision went %d → %d", w.what, beforeSpec, afterSpec)
		}
		if rev("a") != other || specRev("a") != otherSpec {
			t.Errorf("writing b's %s changed a's revisions", w.what)
		}
	}
}

func testClusters(t *testing.T, e *env) {
	ctx := t.Context()
	want := testCluster("orders")
	mustCreate(t, e, want)
	// Names compare exactly on both engines.
	upper := testCluster("Orders")
	mustCreate(t, e, upper)

	got, err := e.s.GetCluster(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if got.Rev == 0 {
		t.Error("a created cluster has revision 0")
	}
	want.Rev = got.Rev // read back, not written
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GetCluster:\n got %+v\nwant %+v", got, want)
	}

	list, err := e.s.ListClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "Orders" || list[1].Name != "orders" {
		t.Errorf("ListClusters = %v, want [Orders orders]", names(list))
	}

	want.Spec.Shards = 3
	want.Spec.Config = nil
	if err := e.s.UpdateClusterSpec(ctx, "orders", want.Spec); err != nil {
		t.Fatal(err)
	}
	observed := base.Add(time.Minute)
	want.Status = api.ClusterStatus{
		Phase:      api.PhaseReady,
		ObservedAt: &observed,
		Shards: []api.ShardStatus{{Index: 0, SentinelName: "orders-0",
			Master: &api.InstanceStatus{Name: "orders-0-0", Address: "127.0.0.1:7000", Role: "master", Up: true, Keys: 42}}},
		Sentinels: []api.SentinelStatus{{Name: "orders-sentinel-0", Address: "127.0.0.1:26379", Up: true, Monitors: []string{"orders-0"}}},
	}
	if err := e.s.UpdateClusterStatus(ctx, "orders", want.Status); err != nil {
		t.Fatal(err)
	}
	got, err = e.s.GetCluster(ctx, "orders")
	if err == nil && (got.Rev == want.Rev || got.Rev == 0) {
		t.Errorf("the revision is %d after updates, %d before", got.Rev, want.Rev)
	}
	want.Rev = got.Rev
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("after updates: GetCluster = %+v, %v\nwant %+v", got, err, want)
	}
	// The observe loop's list: everything but the status.
	bare, err := e.s.ListClustersWithoutStatus(ctx)
	wantBare := want
	wantBare.Status = api.ClusterStatus{}
	if err != nil || len(bare) != 2 || !reflect.DeepEqual(bare[1], wantBare) {
		t.Errorf("ListClustersWithoutStatus = %+v, %v\nwant [Orders %+v]", bare, err, wantBare)
	}

	for _, err := range []error{
		e.s.UpdateClusterSpec(ctx, "missing", want.Spec),
		e.s.UpdateClusterStatus(ctx, "missing", want.Status),
		e.s.DeleteCluster(ctx, "missing"),
		func() error { _, err := e.s.GetCluster(ctx, "missing"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"missing"`) {
			t.Errorf("on a missing cluster: %v, want ErrNotFound naming it", err)
		}
	}

	// Deleting takes the instance records with it, and nothing else.
	for i, c := range []string{"orders", "orders", "Orders"} {
		in := Instance{Name: fmt.Sprintf("%s-0-%d", c, i), Cluster: c, Kind: KindRedis, Ordinal: i, Host: "127.0.0.1", Port: 7000 + i}
		if err := e.s.PutInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.DeleteCluster(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetCluster(ctx, "orders"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetCluster after delete: %v, want ErrNotFound", err)
	}
	if ins, err := e.s.ListInstances(ctx, "orders"); err != nil || len(ins) != 0 {
		t.Errorf("instances of deleted cluster: %v, %v; want none", ins, err)
	}
	if ins, err := e.s.ListInstances(ctx, "Orders"); err != nil || len(ins) != 1 {
		t.Errorf("instances of the other cluster: %v, %v; want 1", ins, err)
	}
	if _, err := e.s.GetJob(ctx, "create-orders"); err != nil {
		t.Errorf("jobs stay as history: %v", err)
	}
	if err := e.s.DeleteCluster(ctx, "orders"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
}

func names(cs []Cluster) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func testDuplicateCluster(t *testing.T, e *env) {
	ctx := t.Context()
	mustCreate(t, e, testCluster("cache"))
	again := testCluster("cache")
	again.Spec.Shards = 9
	err := e.s.CreateClusterWithJob(ctx, again, testJob("second-create", "cache", api.JobCreate, base))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	// Cluster and job go in one transaction: no job without its cluster.
	if _, err := e.s.GetJob(ctx, "second-create"); !errors.Is(err, ErrNotFound) {
		t.Errorf("job of the failed create: %v, want ErrNotFound", err)
	}
	if c, _ := e.s.GetCluster(ctx, "cache"); c.Spec.Shards != 2 {
		t.Errorf("first cluster changed: shards %d", c.Spec.Shards)
	}

	// And no cluster without its job: a job id that is taken fails the
	// whole create.
	err = e.s.CreateClusterWithJob(ctx, testCluster("other"), testJob("create-cache", "other", api.JobCreate, base))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("create with a taken job id: %v, want ErrConflict", err)
	}
	if _, err := e.s.GetCluster(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cluster of the failed create: %v, want ErrNotFound", err)
	}
}

func testPasswordsEncrypted(t *testing.T, e *env) {
	ctx := t.Context()
	a, b := testCluster("a"), testCluster("b")
	b.Password = a.Password // the same secret twice
	mustCreate(t, e, a)
	mustCreate(t, e, b)
	got, err := e.s.GetCluster(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Password != a.Password || got.SentinelPassword != a.SentinelPassword {
		t.Errorf("passwords did not round-trip")
	}

	// Every column of the rows, read as text straight from the database.
	rows, err := e.s.db.QueryContext(ctx, "SELECT name, spec, status, password_enc, sentinel_password_enc FROM clusters ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var encs []string
	for rows.Next() {
		var name, spec, status, pw, spw string
		if err := rows.Scan(&name, &spec, &status, &pw, &spw); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{name, spec, status, pw, spw} {
			for _, secret := range []string{a.Password, a.SentinelPassword, b.SentinelPassword} {
				if strings.Contains(v, secret) {
					t.Errorf("row %s holds a password in plain text: %q", name, v)
				}
			}
		}
		if pw == "" || spw == "" {
			t.Errorf("row %s: empty encrypted column", name)
		}
		encs = append(encs, pw)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(encs) != 2 || encs[0] == encs[1] {
		t.Errorf("the same password must encrypt differently each time (random nonce): %q", encs)
	}

	// A ciphertext is bound to its row: copied into another cluster it does
	// not decrypt.
	if _, err := e.s.db.ExecContext(ctx, "UPDATE clusters SET password_enc = ? WHERE name = 'b'", encs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetCluster(ctx, "b"); !errors.Is(err, ErrDecrypt) {
		t.Errorf("password copied from another row: %v, want ErrDecrypt", err)
	}
}

func testRotation(t *testing.T, e *env) {
	ctx := t.Context()
	c := testCluster("rot")
	mustCreate(t, e, c)
	if err := e.s.UpdateJob(ctx, Job{Job: api.Job{ID: "create-rot", Kind: api.JobCreate, Cluster: "rot", State: api.StateSucceeded, CreatedAt: base, FinishedAt: &base}}); err != nil {
		t.Fatal(err)
	}
	const next = "next-Qx7$secret"
	const nextS = "next-sentinel-Hj3%secret"
	if err := e.s.StartRotation(ctx, "rot", next, nextS, testJob("rot-1", "rot", api.JobRotateCredentials, base)); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.GetCluster(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	if got.Password != c.Password || got.Rotation.Next != next || got.Rotation.Old != "" || !got.Rotation.Active() ||
		!reflect.DeepEqual(got.Accepted(), []string{c.Password, next}) || got.Rotation.NextSentinel != nextS ||
		!reflect.DeepEqual(got.SentinelAccepted(), []string{c.SentinelPassword, nextS}) {
		t.Fatalf("after StartRotation: %+v", got.Rotation)
	}
	if _, err := e.s.GetJob(ctx, "rot-1"); err != nil {
		t.Fatalf("the rotation's job was not stored with it: %v", err)
	}
	// A second start while one is under way: refused, nothing stored.
	err = e.s.StartRotation(ctx, "rot", "other", "other-s", testJob("rot-2", "rot", api.JobRotateCredentials, base))
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("second StartRotation: %v, want ErrConflict", err)
	}
	if _, err := e.s.GetJob(ctx, "rot-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused rotation's job was stored: %v", err)
	}
	if err := e.s.StartRotation(ctx, "nope", "x", "y", testJob("rot-3", "nope", api.JobRotateCredentials, base)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StartRotation of an unknown cluster: %v, want ErrNotFound", err)
	}
	ends := base.Add(time.Hour)
	if err := e.s.SetRotation(ctx, "rot", next, nextS, Rotation{Old: c.Password, OldSentinel: c.SentinelPassword, EndsAt: &ends}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Time
		want []string
	}{{ends.Add(-time.Second), nil}, {ends, []string{"rot"}}, {ends.Add(time.Hour), []string{"rot"}}} {
		if due, err := e.s.DueRotations(ctx, tc.at); err != nil || !reflect.DeepEqual(due, tc.want) {
			t.Errorf("DueRotations(%s) = %v, %v; want %v", tc.at, due, err, tc.want)
		}
	}
	got, _ = e.s.GetCluster(ctx, "rot")
	if got.Password != next || got.Rotation.Old != c.Password || got.Rotation.Next != "" || got.Rotation.EndsAt == nil || !got.Rotation.EndsAt.Equal(ends) ||
		got.SentinelPassword != nextS || got.Rotation.OldSentinel != c.SentinelPassword || got.Rotation.NextSentinel != "" {
		t.Fatalf("after the switch: password %v, rotation %+v", got.Password == next, got.Rotation)
	}
	// No secret is in any column in clear.
	rows, err := e.s.db.QueryContext(ctx, "SELECT password_enc, sentinel_password_enc, next_password_enc, old_password_enc, spec, status, next_sentinel_password_enc, old_sentinel_password_enc FROM clusters WHERE name = 'rot'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var pw, spw, spec, status string
		var nx, old, nxs, olds sql.NullString
		if err := rows.Scan(&pw, &spw, &nx, &old, &spec, &status, &nxs, &olds); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{pw, spw, nx.String, old.String, spec, status, nxs.String, olds.String} {
			for _, secret := range []string{c.Password, next, c.SentinelPassword, nextS} {
				if strings.Contains(v, secret) {
					t.Errorf("a password is stored in clear: %q", v)
				}
			}
		}
		if !old.Valid || old.String == "" {
			t.Errorf("old password column empty during the grace period")
		}
	}
	rows.Close()
	if err := e.s.SetRotation(ctx, "rot", next, nextS, Rotation{}); err != nil {
		t.Fatal(err)
	}
	got, _ = e.s.GetCluster(ctx, "rot")
	if got.Rotation.Active() || got.Rotation.EndsAt != nil || len(got.Accepted()) != 1 || len(got.SentinelAccepted()) != 1 {
		t.Fatalf("after the finish: %+v", got.Rotation)
	}
	if err := e.s.SetRotation(ctx, "nope", "x", "y", Rotation{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SetRotation of an unknown cluster: %v", err)
	}
}

func testAdmit(t *testing.T, e *env) {
	ctx := t.Context()
	// Ten concurrent admissions, each allowed only while no unfinished job
	// exists: exactly one is stored.
	var wg sync.WaitGroup
	var admitted atomic.Int32
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := testCluster(fmt.Sprintf("adm%d", i))
			err := e.s.Admit(ctx, &c, testJob(fmt.Sprintf("adm-%d", i), c.Name, api.JobCreate, base), func(a Admission) error {
				if len(a.Unfinished) > 0 {
					return errFull
				}
				return nil
			})
			switch {
			case err == nil:
				admitted.Add(1)
			case !errors.Is(err, errFull):
				t.Errorf("Admit: %v", err)
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n != 1 {
		t.Fatalf("%d admissions passed a check that allows one", n)
	}
	cls, err := e.s.ListClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := e.s.UnfinishedJobs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cls) != 1 || len(jobs) != 1 || jobs[0].Cluster != cls[0].Name {
		t.Fatalf("stored %d clusters and %d jobs, want the one admitted", len(cls), len(jobs))
	}
	// The check sees instances, jobs with their parameters, and specs.
	if err := e.s.PutInstance(ctx, Instance{Name: "x-0-0", Cluster: cls[0].Name, Kind: KindRedis, Host: "127.0.0.1", Port: 7000, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	j := testJob("scale-1", cls[0].Name, api.JobScale, base)
	j.Params = json.RawMessage(`{"to":{"shards":1}}`)
	err = e.s.Admit(ctx, nil, j, func(a Admission) error {
		if len(a.Instances) != 1 || len(a.Unfinished) != 1 || a.Unfinished[0].ID != jobs[0].ID {
			return fmt.Errorf("admission saw %d instances, %d jobs", len(a.Instances), len(a.Unfinished))
		}
		if _, ok := a.Specs[cls[0].Name]; !ok {
			return fmt.Errorf("no spec of %s", cls[0].Name)
		}
		return nil
	})
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("a second job in the cluster's lane: %v, want ErrConflict after the check", err)
	}
}

var errFull = errors.New("full")

func testInstances(t *testing.T, e *env) {
	ctx := t.Context()
	s0 := Instance{Name: "web-sentinel-0", Cluster: "web", Kind: KindSentinel, Shard: -1, Ordinal: 0, Host: "127.0.0.1", Port: 26379, Handle: []byte(`{"pid":100,"dataDir":"/d/s0"}`), CreatedAt: base}
	r1 := Instance{Name: "web-0-1", Cluster: "web", Kind: KindRedis, Shard: 0, Ordinal: 1, Host: "127.0.0.1", Port: 7001, Handle: []byte(`{"pid":101,"dataDir":"/d/r1"}`), CreatedAt: base}
	r0 := Instance{Name: "web-0-0", Cluster: "web", Kind: KindRedis, Shard: 0, Ordinal: 0, Host: "127.0.0.1", Port: 7000, Handle: []byte(`{"pid":102,"dataDir":"/d/r0"}`), CreatedAt: base}
	other := Instance{Name: "api-0-0", Cluster: "api", Kind: KindRedis, Shard: 0, Host: "127.0.0.1", Port: 7100, CreatedAt: base}
	for _, in := range []Instance{s0, r1, r0, other} {
		if err := e.s.PutInstance(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.s.ListInstances(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if want := []Instance{s0, r0, r1}; !reflect.DeepEqual(got, want) {
		t.Errorf("ListInstances:\n got %+v\nwant %+v", got, want)
	}
	if all, err := e.s.ListAllInstances(ctx); err != nil || len(all) != 4 || all[0].Name != "api-0-0" {
		t.Errorf("ListAllInstances = %+v, %v", all, err)
	}

	// Put replaces: a restart changes the handle, even the port.
	r0.Handle, r0.Port = []byte(`{"pid":202,"dataDir":"/d/r0"}`), 7002
	if err := e.s.PutInstance(ctx, r0); err != nil {
		t.Fatal(err)
	}
	// The same values again still count as found (not "no row changed").
	if err := e.s.PutInstance(ctx, r0); err != nil {
		t.Fatal(err)
	}
	got, _ = e.s.ListInstances(ctx, "web")
	if len(got) != 3 || !reflect.DeepEqual(got[1], r0) {
		t.Errorf("after replace: %+v, want %+v in the middle", got, r0)
	}

	// A port held by another instance: conflict, for a new record and for
	// an update, and neither record changes.
	thief := Instance{Name: "web-1-0", Cluster: "web", Kind: KindRedis, Shard: 1, Host: "127.0.0.1", Port: 7001}
	err = e.s.PutInstance(ctx, thief)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "web-0-1") {
		t.Errorf("new instance on a taken port: %v, want ErrConflict naming web-0-1", err)
	}
	moved := other
	moved.Port = 7001
	if err := e.s.PutInstance(ctx, moved); !errors.Is(err, ErrConflict) {
		t.Errorf("instance moved to a taken port: %v, want ErrConflict", err)
	}
	all, _ := e.s.ListAllInstances(ctx)
	if len(all) != 4 || !reflect.DeepEqual(all[0], other) {
		t.Errorf("after conflicts: %+v", all)
	}

	// An endpoint is host and port: the same port on another host (a
	// loopback address of its own, a pod's DNS name, an IPv6 address) is
	// no conflict, and the store keeps the host as given.
	for i, h := range []string{"127.0.1.7", "orders-0-0.orders.ns.svc.cluster.local", "::1"} {
		in := Instance{Name: fmt.Sprintf("host-%d", i), Cluster: "hosts", Kind: KindRedis, Shard: 0, Ordinal: i, Host: h, Port: 7001, CreatedAt: base}
		if err := e.s.PutInstance(ctx, in); err != nil {
			t.Errorf("port 7001 on host %s: %v", h, err)
		}
	}
	if got, err := e.s.ListInstances(ctx, "hosts"); err != nil || len(got) != 3 || got[2].Host != "::1" || got[1].Host != "orders-0-0.orders.ns.svc.cluster.local" {
		t.Errorf("instances on other hosts: %+v, %v", got, err)
	}
	dup := Instance{Name: "host-9", Cluster: "hosts", Kind: KindRedis, Host: "::1", Port: 7001}
	if err := e.s.PutInstance(ctx, dup); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "[::1]:7001") || !strings.Contains(err.Error(), "host-2") {
		t.Errorf("taken IPv6 endpoint: %v, want ErrConflict naming [::1]:7001 and host-2", err)
	}
	for i := range 3 {
		if err := e.s.DeleteInstance(ctx, fmt.Sprintf("host-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	if err := e.s.DeleteInstance(ctx, "web-0-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DeleteInstance(ctx, "web-0-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	// The port is free again.
	if err := e.s.PutInstance(ctx, thief); err != nil {
		t.Errorf("instance on a freed port: %v", err)
	}
}

func testJobConflict(t *testing.T, e *env) {
	ctx := t.Context()
	mustCreate(t, e, testCluster("q"))
	mustCreate(t, e, testCluster("r"))
	scale := testJob("scale-1", "q", api.JobScale, base.Add(time.Second))

	err := e.s.CreateJob(ctx, scale)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "create-q") {
		t.Errorf("job while the create job is pending: %v, want ErrConflict naming create-q", err)
	}
	create, err := e.s.GetJob(ctx, "create-q")
	if err != nil {
		t.Fatal(err)
	}
	create.State = api.StateRunning
	if err := e.s.UpdateJob(ctx, create); err != nil {
		t.Fatal(err)
	}
	if err := e.s.CreateJob(ctx, scale); !errors.Is(err, ErrConflict) {
		t.Errorf("job while the create job runs: %v, want ErrConflict", err)
	}
	create.State = api.StateSucceeded
	if err := e.s.UpdateJob(ctx, create); err != nil {
		t.Fatal(err)
	}
	if err := e.s.CreateJob(ctx, scale); err != nil {
		t.Errorf("job once the create job finished: %v", err)
	}
	// A job id is unique too.
	if err := e.s.CreateJob(ctx, testJob("scale-1", "z", api.JobScale, base)); !errors.Is(err, ErrConflict) {
		t.Errorf("taken job id: %v, want ErrConflict", err)
	}
	// Reviving a finished job while another is unfinished is a conflict too.
	create.State = api.StatePending
	if err := e.s.UpdateJob(ctx, create); !errors.Is(err, ErrConflict) {
		t.Errorf("revive a job beside an unfinished one: %v, want ErrConflict", err)
	}
	// A failed job finishes too.
	scale.State = api.StateFailed
	if err := e.s.UpdateJob(ctx, scale); err != nil {
		t.Fatal(err)
	}
	if err := e.s.CreateJob(ctx, testJob("backup-1", "q", api.JobBackup, base.Add(2*time.Second))); err != nil {
		t.Errorf("job after a failed one: %v", err)
	}
	// Other clusters are not affected, and a cluster needs no row to get a
	// job (a delete job may outlive its cluster).
	rCreate, _ := e.s.GetJob(ctx, "create-r")
	if rCreate.State != api.StatePending {
		t.Errorf("create-r state %q", rCreate.State)
	}
	if err := e.s.CreateJob(ctx, testJob("ghost-1", "ghost", api.JobDelete, base)); err != nil {
		t.Errorf("job for a cluster without a row: %v", err)
	}
}

func testConcurrentCreateJob(t *testing.T, e *env) {
	exactlyOneWins(t, "concurrent CreateJob", func(i int) error {
		return e.s.CreateJob(t.Context(), testJob(fmt.Sprintf("race-%d", i), "race", api.JobScale, base))
	})
	if jobs, _ := e.s.UnfinishedJobs(t.Context()); len(jobs) != 1 {
		t.Errorf("unfinished jobs: %d, want 1", len(jobs))
	}
}

func testJobRoundTrip(t *testing.T, e *env) {
	ctx := t.Context()
	j := testJob("j1", "c", api.JobBackup, base)
	j.Params = json.RawMessage(`{"shard":1,"target":"s3://b/k"}`)
	if err := e.s.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, j) {
		t.Errorf("after create:\n got %+v\nwant %+v", got, j)
	}

	started, finished := base.Add(time.Second), base.Add(3*time.Second)
	j.State, j.Progress, j.Message, j.Error = api.StateFailed, 0.5, "uploading", "upload: connection reset"
	j.StartedAt, j.FinishedAt = &started, &finished
	j.Steps = []api.Step{
		{Name: "snapshot", State: api.StateSucceeded, StartedAt: &started, FinishedAt: &started},
		{Name: "upload", State: api.StateFailed, StartedAt: &started},
	}
	j.Params = json.RawMessage(`{"shard":1,"target":"s3://b/k","uploadId":"u-1"}`)
	if err := e.s.UpdateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	got, err = e.s.GetJob(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, j) {
		t.Errorf("after update:\n got %+v\nwant %+v", got, j)
	}

	j.Params = nil
	if err := e.s.UpdateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.s.GetJob(ctx, "j1"); got.Params != nil {
		t.Errorf("params cleared: got %s", got.Params)
	}

	if _, err := e.s.GetJob(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetJob(missing) = %v, want ErrNotFound", err)
	}
	if err := e.s.UpdateJob(ctx, testJob("nope", "c", api.JobScale, base)); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateJob(missing) = %v, want ErrNotFound", err)
	}
	bad := testJob("bad", "c2", api.JobScale, base)
	bad.Params = json.RawMessage(`{not json`)
	if err := e.s.CreateJob(ctx, bad); err == nil {
		t.Error("CreateJob with invalid params JSON: no error")
	}
}

func testJobLists(t *testing.T, e *env) {
	ctx := t.Context()
	// Created out of order; created_at decides.
	jobs := []Job{
		testJob("a2", "a", api.JobScale, base.Add(2*time.Minute)),
		testJob("b1", "b", api.JobCreate, base.Add(1*time.Minute)),
		testJob("a0", "a", api.JobCreate, base),
		testJob("a3", "a", api.JobBackup, base.Add(3*time.Minute)),
	}
	jobs[2].State = api.StateSucceeded // a0
	jobs[0].State = api.StateFailed    // a2
	fin0, fin2 := base.Add(20*time.Minute), base.Add(10*time.Minute)
	jobs[0].FinishedAt, jobs[2].FinishedAt = &fin0, &fin2
	jobs[1].State = api.StateRunning // b1
	for _, j := range jobs {
		if err := e.s.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(js []Job, err error) string {
		if err != nil {
			return err.Error()
		}
		var s []string
		for _, j := range js {
			s = append(s, j.ID)
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct{ what, got, want string }{
		{"ListJobs(all)", ids(e.s.ListJobs(ctx, "")), "a3 a2 b1 a0"},
		{"ListJobs(a)", ids(e.s.ListJobs(ctx, "a")), "a3 a2 a0"},
		{"ListJobs(none)", ids(e.s.ListJobs(ctx, "none")), ""},
		{"UnfinishedJobs", ids(e.s.UnfinishedJobs(ctx)), "b1 a3"},
		{"JobsSince(15m)", ids(e.s.JobsSince(ctx, base.Add(15*time.Minute))), "b1 a2 a3"},
		{"JobsSince(20m)", ids(e.s.JobsSince(ctx, base.Add(20*time.Minute))), "b1 a2 a3"},
		{"JobsSince(5m)", ids(e.s.JobsSince(ctx, base.Add(5*time.Minute))), "a0 b1 a2 a3"},
		{"JobsSince(21m)", ids(e.s.JobsSince(ctx, base.Add(21*time.Minute))), "b1 a3"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func testEvents(t *testing.T, e *env) {
	ctx := t.Context()
	one := 1
	var want []api.Event
	for i := range 5 {
		ev := api.Event{ID: fmt.Sprintf("e%d", i), Cluster: "ev", Type: "failover", At: base.Add(time.Duration(i) * time.Second), Message: fmt.Sprintf("event %d", i)}
		if i%2 == 0 {
			ev.Shard = &one
			ev.Details = map[string]any{"from": "127.0.0.1:7000", "to": "127.0.0.1:7001", "ms": 812.0, "nested": map[string]any{"ok": true}}
		}
		want = append(want, ev)
	}
	// Added out of order; at decides.
	for _, i := range []int{3, 0, 4, 1, 2} {
		if err := e.s.AddEvent(ctx, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.s.AddEvent(ctx, api.Event{ID: "x", Cluster: "other", Type: "t", At: base}); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.ListEvents(ctx, "ev", 3)
	if err != nil {
		t.Fatal(err)
	}
	if wantTop := []api.Event{want[4], want[3], want[2]}; !reflect.DeepEqual(got, wantTop) {
		t.Errorf("ListEvents(limit 3):\n got %+v\nwant %+v", got, wantTop)
	}
	if all, err := e.s.ListEvents(ctx, "ev", 0); err != nil || len(all) != 5 || all[4].ID != "e0" {
		t.Errorf("ListEvents(no limit) = %+v, %v", all, err)
	}
	if err := e.s.AddEvent(ctx, want[0]); !errors.Is(err, ErrConflict) {
		t.Errorf("taken event id: %v, want ErrConflict", err)
	}

	// Generated ids and times: events added in one burst still list newest
	// first.
	for i := range 3 {
		if err := e.s.AddEvent(ctx, api.Event{Cluster: "burst", Type: "t", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	burst, err := e.s.ListEvents(ctx, "burst", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(burst) != 3 || burst[0].Message != "2" || burst[2].Message != "0" || burst[0].ID == "" || burst[0].At.IsZero() {
		t.Errorf("burst = %+v, want messages 2 1 0 with ids and times", burst)
	}
}

func testTimesUTC(t *testing.T, e *env) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	local := time.Date(2025, 6, 1, 12, 0, 0, 987654321, zone)
	c := testCluster("tz")
	c.CreatedAt = local
	if err := e.s.CreateClusterWithJob(ctx, c, testJob("tz-job", "tz", api.JobCreate, local)); err != nil {
		t.Fatal(err)
	}
	want := local.UTC().Truncate(time.Microsecond)
	got, err := e.s.GetCluster(ctx, "tz")
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt != want {
		t.Errorf("CreatedAt = %v, want %v (UTC, microseconds)", got.CreatedAt, want)
	}
	j, err := e.s.GetJob(ctx, "tz-job")
	if err != nil {
		t.Fatal(err)
	}
	if j.CreatedAt != want {
		t.Errorf("job CreatedAt = %v, want %v", j.CreatedAt, want)
	}

	// Zero times are filled with now.
	before := time.Now().Add(-time.Second)
	if err := e.s.CreateClusterWithJob(ctx, Cluster{Name: "now"}, Job{Job: api.Job{ID: "now-job", Cluster: "now", Kind: api.JobCreate}}); err != nil {
		t.Fatal(err)
	}
	n, _ := e.s.GetCluster(ctx, "now")
	nj, _ := e.s.GetJob(ctx, "now-job")
	if n.CreatedAt.Location() != time.UTC || n.CreatedAt.Before(before) || nj.CreatedAt.Before(before) || nj.State != api.StatePending {
		t.Errorf("defaults: cluster created %v, job created %v state %q", n.CreatedAt, nj.CreatedAt, nj.State)
	}
}

func testMigrationsIdempotent(t *testing.T, e *env) {
	ctx := t.Context()
	mustCreate(t, e, testCluster("keep"))
	// Two more processes start at once on the same database.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() {
			s, err := Open(ctx, e.dsn, e.keyFile)
			if err == nil {
				_, err = s.GetCluster(ctx, "keep")
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("Open again: %v", err)
		}
	}
	var count, maxVersion int
	if err := e.s.db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(version) FROM schema_migrations").Scan(&count, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if count != len(migrations) || maxVersion != migrations[len(migrations)-1].version {
		t.Errorf("schema_migrations: %d rows up to version %d, want %d", count, maxVersion, len(migrations))
	}
	var applied dbTime
	if err := e.s.db.QueryRowContext(ctx, "SELECT applied_at FROM schema_migrations WHERE version = 1").Scan(&applied); err != nil || time.Since(applied.t) > time.Hour {
		t.Errorf("applied_at = %v, %v", applied.t, err)
	}

	// A database from a newer binary is refused.
	if _, err := e.s.db.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', ?)", timeArg(now())); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, e.dsn, e.keyFile); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open on a newer schema: %v, want a refusal", err)
	}
}

func testWrongKey(t *testing.T, e *env) {
	ctx := t.Context()
	c := testCluster("k")
	mustCreate(t, e, c)

	// Another key file against this database: Open refuses, naming the file.
	otherKey := filepath.Join(t.TempDir(), "other.key")
	s, err := Open(ctx, e.dsn, otherKey)
	if err == nil {
		s.Close()
		t.Fatal("Open with another key file succeeded")
	}
	if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), otherKey) {
		t.Errorf("Open with another key: %v, want ErrDecrypt naming %s", err, otherKey)
	}

	// Reading a secret with the wrong key says which secret, never what.
	wrong, err := newSealer(bytes.Repeat([]byte{7}, keySize))
	if err != nil {
		t.Fatal(err)
	}
	swapped := *e.s
	swapped.seal = wrong
	_, err = swapped.GetCluster(ctx, "k")
	if !errors.Is(err, ErrDecrypt) || !strings.Contains(err.Error(), `cluster "k"`) || strings.Contains(err.Error(), c.Password) {
		t.Errorf("GetCluster with a wrong key: %v, want ErrDecrypt naming the cluster", err)
	}
	if _, err := swapped.ListClusters(ctx); !errors.Is(err, ErrDecrypt) {
		t.Errorf("ListClusters with a wrong key: %v, want ErrDecrypt", err)
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsn := "sqlite://" + filepath.Join(dir, "m.db")
	keyFile := filepath.Join(dir, "secret", "store.key")
	s, err := Open(t.Context(), dsn, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != keySize {
		t.Errorf("key file: mode %v size %d, want 0600 and %d bytes", fi.Mode().Perm(), fi.Size(), keySize)
	}
	key, _ := os.ReadFile(keyFile)
	if bytes.Equal(key, make([]byte, keySize)) {
		t.Error("key file is all zeros")
	}

	// Reopened, the same key is used and the file is left alone.
	s, err = Open(t.Context(), dsn, keyFile)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()
	if again, _ := os.ReadFile(keyFile); !bytes.Equal(again, key) {
		t.Error("key file changed on reopen")
	}

	for _, size := range []int{0, 16, 33, 64} {
		bad := filepath.Join(dir, fmt.Sprintf("bad-%d.key", size))
		if err := os.WriteFile(bad, bytes.Repeat([]byte{1}, size), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(t.Context(), "sqlite://"+filepath.Join(dir, "other.db"), bad)
		if err == nil || !strings.Contains(err.Error(), "want exactly 32") {
			t.Errorf("%d-byte key file: %v, want a refusal", size, err)
		}
		if got, _ := os.ReadFile(bad); len(got) != size {
			t.Errorf("%d-byte key file was rewritten", size)
		}
	}
}

func TestKeyFileCreatedOnceUnderRace(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "store.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := loadKey(keyFile)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("processes starting together got different keys")
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(keyFile))
	if len(entries) != 1 {
		t.Errorf("left temporary files behind: %v", entries)
	}
}

func TestSealer(t *testing.T) {
	t.Parallel()
	s, err := newSealer(bytes.Repeat([]byte{1}, keySize))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"", "p", "pässwörd with spaces and 🔑", strings.Repeat("x", 4096)} {
		enc, err := s.seal(secret, "password of cluster \"a\"")
		if err != nil {
			t.Fatal(err)
		}
		// Short secrets can turn up in base64 by chance.
		if len(secret) >= 8 && strings.Contains(enc, secret) {
			t.Errorf("ciphertext holds the secret")
		}
		got, err := s.open(enc, "password of cluster \"a\"")
		if err != nil || got != secret {
			t.Errorf("round trip of %q: %q, %v", secret, got, err)
		}
		if _, err := s.open(enc, "password of cluster \"b\""); !errors.Is(err, ErrDecrypt) {
			t.Errorf("opened under another row's additional data: %v", err)
		}
	}
	for _, bad := range []string{"", "not base64!", "AAAA"} {
		if _, err := s.open(bad, "x"); !errors.Is(err, ErrDecrypt) {
			t.Errorf("open(%q) = %v, want ErrDecrypt", bad, err)
		}
	}
	if _, err := newSealer(make([]byte, 16)); err == nil {
		t.Error("newSealer accepted a 16-byte key")
	}
}

func TestOpenDSNErrors(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "k")
	for _, c := range []struct{ dsn, want string }{
		{"postgres://u:hunter2@h/db", `scheme "postgres" is not supported`},
		{"/var/lib/manager.db", "DSN must look like"},
		{"sqlite://", "no file path"},
		{"mysql://u:hunter2@/db", "no host"},
		{"mysql://u:hunter2@h:3306/", "one database name"},
		{"mysql://u:hunter2@h:3306/a/b", "one database name"},
		{"mysql://u:hunter2@h:bad/db", "not a valid URL"},
		{"mysql://u:hunter2@h:3306/db?tls=nonsense", "options"},
	} {
		_, err := Open(t.Context(), c.dsn, keyFile)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want an error with %q", c.dsn, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q): the error shows the password: %v", c.dsn, err)
		}
	}
}

func TestMySQLConfig(t *testing.T) {
	t.Parallel()
	cfg, err := mysqlConfig("mysql://user:p%40ss%3Aw%2Frd@db.example:3307/manager?timeout=3s&multiStatements=true&parseTime=false")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "user" || cfg.Passwd != "p@ss:w/rd" || cfg.Addr != "db.example:3307" || cfg.Net != "tcp" || cfg.DBName != "manager" {
		t.Errorf("parsed %s@%s(%s)/%s", cfg.User, cfg.Net, cfg.Addr, cfg.DBName)
	}
	if !cfg.ParseTime || cfg.MultiStatements || !cfg.ClientFoundRows || cfg.Loc != time.UTC || !strings.HasPrefix(cfg.Collation, "utf8mb4") {
		t.Errorf("forced options not forced: parseTime %v multiStatements %v clientFoundRows %v loc %v collation %q",
			cfg.ParseTime, cfg.MultiStatements, cfg.ClientFoundRows, cfg.Loc, cfg.Collation)
	}
	if cfg.Timeout != 3*time.Second {
		t.Errorf("driver option lost: timeout %v", cfg.Timeout)
	}
	cfg, err = mysqlConfig("mysql://user@db.example/manager")
	if err != nil || cfg.Addr != "db.example:3306" {
		t.Errorf("default port: %v, %v", cfg, err)
	}
}

func TestSQLiteRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := Open(t.Context(), "sqlite://data/manager.db", "data/store.key")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, "data", "manager.db")); err != nil {
		t.Errorf("relative path: %v", err)
	}
}

func TestMariaDBMissingDatabase(t *testing.T) {
	t.Parallel()
	dsn := testenv.StartMariaDB(t)
	missing := dsn[:strings.LastIndex(dsn, "/")+1] + "no_such_db"
	_, err := Open(t.Context(), missing, filepath.Join(t.TempDir(), "k"))
	if err == nil || !strings.Contains(err.Error(), `database "no_such_db" does not exist`) {
		t.Errorf("Open on a missing database: %v", err)
	}
	pass := dsn[strings.Index(dsn, ":")+3:]
	pass = pass[strings.Index(pass, ":")+1 : strings.Index(pass, "@")]
	if err != nil && strings.Contains(err.Error(), pass) {
		t.Errorf("the error shows the password: %v", err)
	}
}

// exactlyOneWins runs f eight times at once and checks that exactly one call
// succeeds and every other one gets ErrConflict.
func exactlyOneWins(t *testing.T, what string, f func(i int) error) {
	t.Helper()
	const n = 8
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		ok, confl int
		other     []error
	)
	for i := range n {
		wg.Go(func() {
			err := f(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrConflict):
				confl++
			default:
				other = append(other, err)
			}
		})
	}
	wg.Wait()
	if ok != 1 || confl != n-1 || len(other) > 0 {
		t.Errorf("%d %s: %d ok, %d conflicts, other errors %v; want 1 ok", n, what, ok, confl, other)
	}
}

// testMigration4: a database at version 2 with instance records (pid, data
// dir, unique port) is migrated: every record keeps its fields, pid and
// data dir become the local handle, and uniqueness is per endpoint.
func testMigration4(t *testing.T, e *env) {
	ctx := t.Context()
	// A second, empty database at version 2.
	eng := engines[0]
	if strings.HasPrefix(e.dsn, "mysql://") {
		eng = engines[1]
	}
	db, d, _, err := openDB(ctx, eng.dsn(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var upTo2 []migration
	for _, m := range migrations {
		if m.version <= 2 {
			upTo2 = append(upTo2, m)
		}
	}
	if err := migrateTo(ctx, db, d, upTo2); err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{
		`('m-0-0', 'm', 'redis', 0, 0, '127.0.0.1', 17001, 4242, '/data/instances/m/m-0-0', ?)`,
		`('m-sentinel-0', 'm', 'sentinel', -1, 0, '127.0.0.1', 17000, 0, '', ?)`,
	} {
		if _, err := db.ExecContext(ctx, "INSERT INTO instances (name, cluster, kind, shard, ordinal, host, port, pid, data_dir, created_at) VALUES "+row, timeArg(base)); err != nil {
			t.Fatal(err)
		}
	}
	if err := migrate(ctx, db, d); err != nil {
		t.Fatal(err)
	}
	if d.name == mysqlDialect.name {
		// DDL is not transactional there: a run interrupted after its
		// last statement, before it was recorded, runs again.
		if _, err := db.ExecContext(ctx, "DELETE FROM schema_migrations WHERE version = 4"); err != nil {
			t.Fatal(err)
		}
		if err := migrate(ctx, db, d); err != nil {
			t.Fatalf("migration 4 run again: %v", err)
		}
	}
	s := &sqlStore{db: db, d: d}
	got, err := s.ListInstances(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("after migration: %+v", got)
	}
	sent, red := got[0], got[1]
	if sent.Name != "m-sentinel-0" || sent.Port != 17000 || sent.Handle != nil || sent.Shard != -1 || !sent.CreatedAt.Equal(base) {
		t.Errorf("sentinel record: %+v", sent)
	}
	var h struct {
		Pid     int    `json:"pid"`
		DataDir string `json:"dataDir"`
	}
	if red.Name != "m-0-0" || red.Host != "127.0.0.1" || red.Port != 17001 || json.Unmarshal(red.Handle, &h) != nil ||
		h.Pid != 4242 || h.DataDir != "/data/instances/m/m-0-0" {
		t.Errorf("redis record: %+v (handle %s)", red, red.Handle)
	}
	// Uniqueness is per endpoint now.
	if err := s.PutInstance(ctx, Instance{Name: "m-0-1", Cluster: "m", Kind: KindRedis, Host: "127.0.1.2", Port: 17001}); err != nil {
		t.Errorf("same port, other host: %v", err)
	}
	if err := s.PutInstance(ctx, Instance{Name: "m-0-2", Cluster: "m", Kind: KindRedis, Host: "127.0.0.1", Port: 17001}); !errors.Is(err, ErrConflict) {
		t.Errorf("same endpoint: %v, want ErrConflict", err)
	}
}

// TestSQLiteRevsBesideWriter: on SQLite, ClusterRevs and GetClusters do
// not wait for the one writing connection (held here by an open
// transaction, as the observe loop's writes and a ListClusters that
// decodes every status hold it), and see what was committed before.
func TestSQLiteRevsBesideWriter(t *testing.T) {
	e := newEnv(t, engines[0])
	ctx := t.Context()
	mustCreate(t, e, testCluster("held"))
	tx, err := e.s.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE clusters SET status = status WHERE name = ?", "held"); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	revs, err := e.s.ClusterRevs(rctx)
	if err != nil || len(revs) != 1 || revs[0].Name != "held" || revs[0].Rev == 0 {
		t.Fatalf("ClusterRevs while the writer is held = %+v, %v", revs, err)
	}
	cls, err := e.s.GetClusters(rctx, []string{"held"})
	if err != nil || len(cls) != 1 || cls[0].Rev != revs[0].Rev {
		t.Fatalf("GetClusters while the writer is held = %d clusters, %v", len(cls), err)
	}
}

package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// clusterRow is one line of the overview.
type clusterRow struct {
	Name      string
	Phase     string
	Reason    string
	Shards    int
	Instances int
	Up        int
	// UsedMemory is the sum over the masters; MaxMemory the sum of the
	// masters' maxmemory (0: no limit).
	UsedMemory int64
	MaxMemory  int64
	Ops        figure
	Clients    figure
	LastBackup *api.Backup
	// Alerts is the number of firing alerts; nil until the manager keeps
	// alerts (shown as "—").
	Alerts *int
	rank   int
}

// figure is a number that may be unknown (shown as "—").
type figure struct {
	Value int64
	Known bool
}

func (f *figure) add(v int64, known bool) {
	if known {
		f.Value += v
		f.Known = true
	}
}

// phaseRank orders the overview: problems first.
func phaseRank(phase string) int {
	switch phase {
	case api.PhaseFailed:
		return 0
	case api.PhaseDegraded:
		return 1
	case api.PhaseFailingOver:
		return 2
	case api.PhaseCreating, api.PhaseScaling, api.PhaseDeleting:
		return 3
	case api.PhaseReady:
		return 5
	}
	return 4
}

// overviewRows builds the overview's lines, problems first: by phase, then
// down instances, then name. latest holds each cluster's newest backup.
func overviewRows(cls []api.Cluster, latest map[string]api.Backup, firing map[string]int) []clusterRow {
	rows := make([]clusterRow, 0, len(cls))
	for _, cl := range cls {
		row := clusterRow{Name: cl.Name, Phase: cl.Status.Phase, Reason: cl.Status.Reason, Shards: cl.Spec.Shards, rank: phaseRank(cl.Status.Phase)}
		if row.Phase == "" {
			row.Phase = "Unknown"
		}
		specMax, _ := spec.ParseSize(cl.Spec.Maxmemory)
		for _, sh := range cl.Status.Shards {
			for _, in := range instancesOf(sh) {
				row.Instances++
				if in.Up {
					row.Up++
				}
				f := figuresOf(in)
				row.Ops.add(f.ops.Value, f.ops.Known)
				row.Clients.add(f.clients.Value, f.clients.Known)
				if in.Role == "master" {
					row.UsedMemory += in.UsedMemoryBytes
					if f.maxmemory > 0 {
						row.MaxMemory += f.maxmemory
					} else {
						row.MaxMemory += specMax
					}
				}
			}
		}
		if b, ok := latest[cl.Name]; ok {
			b := b
			row.LastBackup = &b
		}
		if firing != nil {
			n := firing[cl.Name]
			row.Alerts = &n
		}
		rows = append(rows, row)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if fa, fb := deref(a.Alerts), deref(b.Alerts); fa != fb {
			return fa > fb
		}
		if da, db := a.Instances-a.Up, b.Instances-b.Up; da != db {
			return da > db
		}
		return a.Name < b.Name
	})
	return rows
}

func instancesOf(sh api.ShardStatus) []api.InstanceStatus {
	out := make([]api.InstanceStatus, 0, 1+len(sh.Replicas))
	if sh.Master != nil {
		out = append(out, *sh.Master)
	}
	return append(out, sh.Replicas...)
}

// latestBackups picks each cluster's newest backup from a newest-first
// list.
func latestBackups(bs []api.Backup) map[string]api.Backup {
	out := map[string]api.Backup{}
	for _, b := range bs {
		if _, ok := out[b.Cluster]; !ok {
			out[b.Cluster] = b
		}
	}
	return out
}

func (c *console) overview(r *http.Request, v *view) (int, error) {
	cls, err := c.cfg.Service.ListClusters(r.Context())
	if err != nil {
		return 0, err
	}
	// "" lists every cluster's backups in one read; a store without any
	// answers not found, which means none.
	bs, err := c.cfg.Service.ListBackups(r.Context(), "")
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	v.Title, v.Page, v.tmpl, v.Stream = "Clusters", "overview", "overview", "/api/v1/stream"
	alerts, err := c.alerts(r.Context(), "")
	if err != nil {
		return 0, err
	}
	var firing map[string]int
	if alerts != nil {
		firing = map[string]int{}
		for _, a := range alerts {
			if a.State == api.AlertFiring {
				firing[a.Cluster]++
			}
		}
	}
	v.Data = overviewRows(cls, latestBackups(bs), firing)
	return 0, nil
}

func deref(n *int) int {
	if n == nil {
		return 0
	}
	return *n
}

// alerts lists the alerts of a cluster ("": all) that are pending or
// firing, firing first, then by rule and instance; nil when the console
// has no alert source.
func (c *console) alerts(ctx context.Context, cluster string) ([]api.Alert, error) {
	if c.cfg.Alerts == nil {
		return nil, nil
	}
	all, err := c.cfg.Alerts.ListAlerts(ctx)
	if err != nil {
		return nil, err
	}
	out := []api.Alert{}
	for _, a := range all {
		if (cluster == "" || a.Cluster == cluster) && (a.State == api.AlertFiring || a.State == api.AlertPending) {
			out = append(out, a)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].State == api.AlertFiring) != (out[j].State == api.AlertFiring) {
			return out[i].State == api.AlertFiring
		}
		if out[i].Rule != out[j].Rule {
			return out[i].Rule < out[j].Rule
		}
		return out[i].Instance < out[j].Instance
	})
	return out, nil
}

// failover is one entry of a cluster's failover timeline. The timings
// are milliseconds from when the manager first noticed the master gone
// (lost, else detected by Sentinel).
type failover struct {
	Event     api.Event
	OldMaster string
	NewMaster string
	Start     time.Time
	// DetectedMs is when Sentinel agreed the master is down or, when it
	// never had to (the manager forced a fast failover on the platform's
	// word), when the platform saw the process die: 0.
	DetectedMs *int64
	// DetectedBy says which: "Sentinel" or "platform".
	DetectedBy string
	// ForcedMs is when the manager asked Sentinel to fail over at once.
	ForcedMs   *int64
	PromotedMs *int64
	SwitchedMs *int64
	// WriteUnavailableMs is the event's own figure, when it has one.
	WriteUnavailableMs *int64
	Fast               bool
}

// failoverTimeline picks the failover events (newest first) and reads
// the times the controller's watcher (controller/watch.go writeSwitch)
// puts in their details.
func failoverTimeline(evs []api.Event) []failover {
	var out []failover
	for _, e := range evs {
		if e.Type != "failover" {
			continue
		}
		f := failover{Event: e, OldMaster: detailString(e.Details, "oldMaster"), NewMaster: detailString(e.Details, "newMaster")}
		f.Fast, _ = e.Details["fast"].(bool)
		lost, detected := detailTime(e.Details, "lostAt"), detailTime(e.Details, "detectedAt")
		promoted, switched := detailTime(e.Details, "promotedAt"), detailTime(e.Details, "switchedAt")
		f.Start = lost
		if f.Start.IsZero() {
			f.Start = detected
		}
		since := func(t time.Time) *int64 {
			if t.IsZero() || f.Start.IsZero() {
				return nil
			}
			ms := t.Sub(f.Start).Milliseconds()
			return &ms
		}
		f.DetectedMs, f.PromotedMs, f.SwitchedMs = since(detected), since(promoted), since(switched)
		f.ForcedMs = since(detailTime(e.Details, "forcedAt"))
		switch {
		case f.DetectedMs != nil:
			f.DetectedBy = "Sentinel"
		case !lost.IsZero():
			f.DetectedMs, f.DetectedBy = since(lost), "platform"
		}
		if n, ok := detailNumber(e.Details, "writeUnavailableMs"); ok {
			f.WriteUnavailableMs = &n
		}
		out = append(out, f)
	}
	return out
}

func detailString(d map[string]any, k string) string {
	s, _ := d[k].(string)
	return s
}

// detailTime reads a time from event details: a string after the store's
// JSON round trip, a time.Time before it.
func detailTime(d map[string]any, k string) time.Time {
	switch t := d[k].(type) {
	case time.Time:
		return t
	case string:
		if p, err := time.Parse(time.RFC3339Nano, t); err == nil {
			return p
		}
	}
	return time.Time{}
}

func detailNumber(d map[string]any, k string) (int64, bool) {
	switch n := d[k].(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

// clusterPage is the cluster page's data.
type clusterPage struct {
	Cluster api.Cluster
	// Alerts are the cluster's pending and firing alerts; nil when the
	// manager keeps none.
	Alerts    []api.Alert
	Shards    []shardView
	Timeline  []failover
	Jobs      []api.Job
	Events    []api.Event
	Backups   []api.Backup
	Schedule  *api.BackupSchedule
	Ranges    []string
	ShardIdxs []int
	// Autoscale is the autoscaling card; nil when the manager keeps no
	// policies.
	Autoscale *autoscaleView
}

type shardView struct {
	Index        int
	SentinelName string
	Instances    []instanceView
}

type instanceView struct {
	api.InstanceStatus
	Ops     figure
	Clients figure
}

func shardViews(cl api.Cluster) []shardView {
	out := make([]shardView, 0, len(cl.Status.Shards))
	for _, sh := range cl.Status.Shards {
		sv := shardView{Index: sh.Index, SentinelName: sh.SentinelName}
		for _, in := range instancesOf(sh) {
			f := figuresOf(in)
			sv.Instances = append(sv.Instances, instanceView{InstanceStatus: in, Ops: f.ops, Clients: f.clients})
		}
		out = append(out, sv)
	}
	return out
}

// recentJobs keeps the unfinished jobs and the newest finished ones.
func recentJobs(js []api.Job, finished int) []api.Job {
	var out []api.Job
	for _, j := range js {
		if !j.Done() {
			out = append(out, j)
		} else if finished > 0 {
			out = append(out, j)
			finished--
		}
	}
	return out
}

func (c *console) cluster(r *http.Request, v *view) (int, error) {
	ctx, name := r.Context(), r.PathValue("name")
	cl, err := c.cfg.Service.GetCluster(ctx, name)
	if err != nil {
		return 0, err
	}
	evs, err := c.cfg.Service.Events(ctx, name)
	if err != nil {
		return 0, err
	}
	js, err := c.cfg.Service.ListJobs(ctx, name)
	if err != nil {
		return 0, err
	}
	bs, err := c.cfg.Service.ListBackups(ctx, name)
	if err != nil {
		return 0, err
	}
	// Jobs of an earlier cluster of the same name are history of that one.
	mine := js[:0]
	for _, j := range js {
		if !j.CreatedAt.Before(cl.CreatedAt.Add(-time.Second)) {
			mine = append(mine, j)
		}
	}
	p := clusterPage{Cluster: cl, Shards: shardViews(cl), Timeline: failoverTimeline(evs), Jobs: recentJobs(mine, 10),
		Backups: bs, Ranges: []string{"1h", "6h", "24h"}}
	if len(evs) > 50 {
		evs = evs[:50]
	}
	p.Events = evs
	if p.Alerts, err = c.alerts(ctx, name); err != nil {
		return 0, err
	}
	if p.Autoscale, err = c.autoscaling(ctx, cl); err != nil {
		return 0, err
	}
	if s, err := c.cfg.Service.GetBackupSchedule(ctx, name); err == nil {
		p.Schedule = &s
	} else if !errors.Is(err, store.ErrNotFound) {
		return 0, err
	}
	for i := 0; i < cl.Spec.Shards; i++ {
		p.ShardIdxs = append(p.ShardIdxs, i)
	}
	v.Title, v.Page, v.tmpl, v.Data = cl.Name, "cluster", "cluster", p
	v.Stream = "/api/v1/stream?cluster=" + cl.Name
	return 0, nil
}

// createPage is the create form's data: the choices and the defaults.
type createPage struct {
	Policies     []string
	Persistences []string
	Defaults     api.ClusterSpec
}

func (c *console) create(r *http.Request, v *view) (int, error) {
	if !v.CanOperate {
		return http.StatusForbidden, fmt.Errorf("your role (%s) may not create clusters", v.Principal.Role)
	}
	def, err := spec.FromCreateRequest(api.CreateClusterRequest{Name: "x"})
	if err != nil {
		return 0, err
	}
	v.Title, v.Page, v.tmpl = "New cluster", "create", "create"
	v.Data = createPage{Policies: []string{"noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
		"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}, Persistences: []string{"rdb", "aof", "none"}, Defaults: def}
	return 0, nil
}

// eventsLimit bounds the events page.
const eventsLimit = 200

func (c *console) events(r *http.Request, v *view) (int, error) {
	ctx := r.Context()
	cluster := r.URL.Query().Get("cluster")
	var names []string
	if cluster != "" {
		names = []string{cluster}
	} else {
		cls, err := c.cfg.Service.ListClusters(ctx)
		if err != nil {
			return 0, err
		}
		for _, cl := range cls {
			names = append(names, cl.Name)
		}
	}
	var all []api.Event
	for _, n := range names {
		evs, err := c.cfg.Service.Events(ctx, n)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
		all = append(all, evs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.After(all[j].At) })
	if len(all) > eventsLimit {
		all = all[:eventsLimit]
	}
	v.Title, v.Page, v.tmpl, v.Data = "Events", "events", "events", all
	v.Stream, v.LiveURL = filtered("/api/v1/stream", cluster, false), filtered("/events", cluster, true)
	return 0, nil
}

func (c *console) jobs(r *http.Request, v *view) (int, error) {
	cluster := r.URL.Query().Get("cluster")
	js, err := c.cfg.Service.ListJobs(r.Context(), cluster)
	if err != nil {
		return 0, err
	}
	if len(js) > eventsLimit {
		js = js[:eventsLimit]
	}
	v.Title, v.Page, v.tmpl, v.Data = "Jobs", "jobs", "jobs", js
	v.Stream, v.LiveURL = filtered("/api/v1/stream", cluster, false), filtered("/jobs", cluster, true)
	return 0, nil
}

func (c *console) job(r *http.Request, v *view) (int, error) {
	j, err := c.cfg.Service.GetJob(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, err
	}
	v.Title, v.Page, v.tmpl, v.Data = "Job "+j.ID, "job", "job", j
	v.Stream = "/api/v1/stream?cluster=" + j.Cluster
	return 0, nil
}

// auditLimit is how many entries the audit page shows.
const auditLimit = 200

func (c *console) audit(r *http.Request, v *view) (int, error) {
	if !v.CanAdmin {
		return http.StatusForbidden, fmt.Errorf("your role (%s) may not read the audit log", v.Principal.Role)
	}
	var entries []AuditEntry
	if c.cfg.Access != nil {
		limit := auditLimit
		if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n <= 1000 {
			limit = n
		}
		var err error
		if entries, err = c.cfg.Access.Audit(r.Context(), limit); err != nil {
			return 0, err
		}
	}
	v.Title, v.Page, v.tmpl, v.Data = "Audit log", "audit", "audit", entries
	return 0, nil
}

type usersPage struct {
	Users  []User
	Tokens []Token
	Roles  []string
}

func (c *console) users(r *http.Request, v *view) (int, error) {
	if !v.CanAdmin {
		return http.StatusForbidden, fmt.Errorf("your role (%s) may not manage users and tokens", v.Principal.Role)
	}
	p := usersPage{Roles: []string{"viewer", "operator", "admin"}}
	if c.cfg.Access != nil {
		var err error
		if p.Users, err = c.cfg.Access.ListUsers(r.Context()); err != nil {
			return 0, err
		}
		if p.Tokens, err = c.cfg.Access.ListTokens(r.Context()); err != nil {
			return 0, err
		}
	}
	v.Title, v.Page, v.tmpl, v.Data = "Users and tokens", "users", "users", p
	return 0, nil
}

type accountPage struct {
	// Changed: the page follows a successful password change.
	Changed bool
}

// account is the signed-in principal's own page: who and which role, and,
// for a user, the form to change their password (PATCH /api/v1/users/{name}
// with the current one).
func (c *console) account(r *http.Request, v *view) (int, error) {
	v.Title, v.Page, v.tmpl, v.Data = "Your account", "account", "account", accountPage{Changed: r.URL.Query().Get("changed") == "1"}
	return 0, nil
}

// filtered is a list URL for one cluster's entries (cluster "": all),
// as its live fragment when fragment is set.
func filtered(path, cluster string, fragment bool) string {
	q := url.Values{}
	if fragment {
		q.Set("fragment", "live")
	}
	if cluster != "" {
		q.Set("cluster", cluster)
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

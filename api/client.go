package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultPollInterval is how often WaitJob asks for a job's state.
const DefaultPollInterval = 200 * time.Millisecond

// DefaultWaitGrace is how long WaitJob keeps asking while every answer is
// a failure that passes: the manager restarting, a new leader taking
// over, a Service or Ingress still routing to a deleted pod.
const DefaultWaitGrace = 90 * time.Second

// maxErrorBody caps how much of an error response is read; an error body is
// a short JSON document, anything longer is a proxy's HTML page.
const maxErrorBody = 64 << 10

// Client talks to a redis-manager server over its REST API. The zero value is
// not usable; create one with NewClient. A Client is safe for concurrent use.
type Client struct {
	// HTTPClient sends the requests. NewClient sets one with a per-request
	// timeout; the context passed to each method bounds the call as well.
	HTTPClient *http.Client
	// PollInterval is the WaitJob polling period (DefaultPollInterval).
	PollInterval time.Duration
	// WaitGrace is how long WaitJob rides out failures that pass (no
	// connection, a timeout, HTTP 502, 503 or 504) before it returns the
	// last one; 0 means DefaultWaitGrace, a negative value not at all.
	WaitGrace time.Duration

	baseURL string
	token   string
}

// NewClient returns a client for the server at baseURL (for example
// "http://127.0.0.1:7800") that authenticates with the admin API token. An
// empty token sends no Authorization header (enough for Health).
func NewClient(baseURL, token string) *Client {
	return &Client{
		HTTPClient:   &http.Client{Timeout: 60 * time.Second},
		PollInterval: DefaultPollInterval,
		baseURL:      strings.TrimRight(baseURL, "/"),
		token:        token,
	}
}

// Error is an error answer of the server: a non-2xx status with, normally,
// an ErrorBody. Callers branch on StatusCode or Code with errors.As.
type Error struct {
	StatusCode int    // HTTP status
	Code       string // machine-readable code, e.g. "not_found"; empty when the body was not an ErrorBody
	Message    string // human-readable message, or the start of a non-JSON body
	Field      string // the offending request field, for invalid input
}

// Error renders the error as one readable line, e.g.
// `not_found: cluster "x" not found` or `invalid: bad size (field "maxmemory")`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Code != "" {
		b.WriteString(e.Code)
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.StatusCode)
		if t := http.StatusText(e.StatusCode); t != "" {
			b.WriteString(" " + t)
		}
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, " (field %q)", e.Field)
	}
	return b.String()
}

// JobFailedError is returned by WaitJob when the job ends in state failed.
type JobFailedError struct {
	Job Job
}

func (e *JobFailedError) Error() string {
	msg := e.Job.Error
	if msg == "" {
		msg = e.Job.Message
	}
	if msg == "" {
		msg = "no error recorded"
	}
	return fmt.Sprintf("job %s (%s %s) failed: %s", e.Job.ID, e.Job.Kind, e.Job.Cluster, msg)
}

// Health returns the server's health. It needs no token.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/api/v1/health", nil, &h)
	return h, err
}

// CreateCluster asks for a new cluster. Fields left nil or empty in req get
// the server's defaults. The returned job tracks the creation.
func (c *Client) CreateCluster(ctx context.Context, req CreateClusterRequest) (ClusterJob, error) {
	var out ClusterJob
	err := c.do(ctx, http.MethodPost, "/api/v1/clusters", req, &out)
	return out, err
}

// ListClusters returns every cluster.
func (c *Client) ListClusters(ctx context.Context) ([]Cluster, error) {
	var out struct {
		Clusters []Cluster `json:"clusters"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/clusters", nil, &out)
	return out.Clusters, err
}

// GetCluster returns one cluster with its last observed status.
func (c *Client) GetCluster(ctx context.Context, name string) (Cluster, error) {
	var out Cluster
	err := c.do(ctx, http.MethodGet, clusterPath(name), nil, &out)
	return out, err
}

// DeleteCluster starts deleting a cluster and returns the delete job.
func (c *Client) DeleteCluster(ctx context.Context, name string) (Job, error) {
	var out struct {
		Job Job `json:"job"`
	}
	err := c.do(ctx, http.MethodDelete, clusterPath(name), nil, &out)
	return out.Job, err
}

// UpdateCluster changes a cluster's spec (scale shards, replicas,
// Sentinels, memory, config) and returns the scale job.
func (c *Client) UpdateCluster(ctx context.Context, name string, req UpdateClusterRequest) (ClusterJob, error) {
	var out ClusterJob
	err := c.do(ctx, http.MethodPatch, clusterPath(name), req, &out)
	return out, err
}

// Failover asks Sentinel for a planned failover of one shard and returns
// the failover job.
func (c *Client) Failover(ctx context.Context, name string, shard int) (Job, error) {
	var out struct {
		Job Job `json:"job"`
	}
	err := c.do(ctx, http.MethodPost, clusterPath(name)+"/failover", FailoverRequest{Shard: shard}, &out)
	return out.Job, err
}

// ClusterEvents returns a cluster's events, newest first.
func (c *Client) ClusterEvents(ctx context.Context, name string) ([]Event, error) {
	var out struct {
		Events []Event `json:"events"`
	}
	err := c.do(ctx, http.MethodGet, clusterPath(name)+"/events", nil, &out)
	return out.Events, err
}

// Metrics returns a cluster's time series over rng ("1h", "6h" or "24h";
// "" is 1h), of one instance or ("") all.
func (c *Client) Metrics(ctx context.Context, name, rng, instance string) (Metrics, error) {
	q := url.Values{}
	if rng != "" {
		q.Set("range", rng)
	}
	if instance != "" {
		q.Set("instance", instance)
	}
	path := clusterPath(name) + "/metrics"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out Metrics
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// Credentials returns the passwords of a cluster's Redis instances and
// Sentinels. The server audits every call.
func (c *Client) Credentials(ctx context.Context, name string) (Credentials, error) {
	var out Credentials
	err := c.do(ctx, http.MethodGet, clusterPath(name)+"/credentials", nil, &out)
	return out, err
}

// GetJob returns one job.
func (c *Client) GetJob(ctx context.Context, id string) (Job, error) {
	var out Job
	err := c.do(ctx, http.MethodGet, "/api/v1/jobs/"+url.PathEscape(id), nil, &out)
	return out, err
}

// ListJobs returns the jobs of one cluster, or of all clusters when cluster
// is empty.
func (c *Client) ListJobs(ctx context.Context, cluster string) ([]Job, error) {
	path := "/api/v1/jobs"
	if cluster != "" {
		path += "?" + url.Values{"cluster": {cluster}}.Encode()
	}
	var out struct {
		Jobs []Job `json:"jobs"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &out)
	return out.Jobs, err
}

// WaitJob polls the job every PollInterval until it is done and returns its
// final state. onProgress, if not nil, sees every polled state, including the
// final one. A job that ends failed returns a *JobFailedError next to the
// job; a failed poll or a cancelled ctx returns the last job seen and the
// error.
func (c *Client) WaitJob(ctx context.Context, id string, onProgress func(Job)) (Job, error) {
	interval := c.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	grace := c.WaitGrace
	if grace == 0 {
		grace = DefaultWaitGrace
	}
	var last Job
	var failingSince time.Time
	for {
		job, err := c.GetJob(ctx, id)
		switch {
		case err != nil && ctx.Err() != nil:
			return last, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case err != nil:
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if !Transient(err) || time.Since(failingSince) >= grace {
				return last, fmt.Errorf("wait for job %s: %w", id, err)
			}
		default:
			failingSince, last = time.Time{}, job
			if onProgress != nil {
				onProgress(job)
			}
			if job.Done() {
				if job.State == StateFailed {
					return job, &JobFailedError{Job: job}
				}
				return job, nil
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case <-ticker.C:
		}
	}
}

// Transient tells whether err, returned by a Client method, may pass if
// the request is sent again: the server could not be reached or did not
// answer in time, or a proxy or a manager without a leader answered 502,
// 503 or 504. An answer of the server itself (not found, invalid, a
// conflict) is not transient.
func Transient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		switch e.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	// No answer (*url.Error: refused, reset, no route, a timeout), or a
	// connection cut in the middle of the body.
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// CreateBackup starts a backup of one shard, or of every shard when shard
// is nil. The records exist at once, in state running.
func (c *Client) CreateBackup(ctx context.Context, cluster string, shard *int) (BackupsJob, error) {
	var out BackupsJob
	err := c.do(ctx, http.MethodPost, clusterPath(cluster)+"/backups", CreateBackupRequest{Shard: shard}, &out)
	return out, err
}

// ListBackups returns a cluster's backups, newest first; the backups of a
// deleted cluster stay listed under its name.
func (c *Client) ListBackups(ctx context.Context, cluster string) ([]Backup, error) {
	var out struct {
		Backups []Backup `json:"backups"`
	}
	err := c.do(ctx, http.MethodGet, clusterPath(cluster)+"/backups", nil, &out)
	return out.Backups, err
}

// GetBackup returns one backup record.
func (c *Client) GetBackup(ctx context.Context, id string) (Backup, error) {
	var out Backup
	err := c.do(ctx, http.MethodGet, backupPath(id), nil, &out)
	return out, err
}

// DeleteBackup starts removing a backup's object, sidecar and record.
func (c *Client) DeleteBackup(ctx context.Context, id string) (Job, error) {
	var out struct {
		Job Job `json:"job"`
	}
	err := c.do(ctx, http.MethodDelete, backupPath(id), nil, &out)
	return out.Job, err
}

// RestoreBackup starts creating a new cluster from a backup (or its set).
func (c *Client) RestoreBackup(ctx context.Context, id string, req RestoreRequest) (ClusterJob, error) {
	var out ClusterJob
	err := c.do(ctx, http.MethodPost, backupPath(id)+"/restore", req, &out)
	return out, err
}

// RotateCredentials starts a password rotation: a new password next to the
// old one on every instance, then the switch; the old one is accepted for
// graceMs (nil: one hour) or until FinishRotation.
func (c *Client) RotateCredentials(ctx context.Context, cluster string, graceMs *int64) (Job, error) {
	var out struct {
		Job Job `json:"job"`
	}
	err := c.do(ctx, http.MethodPost, clusterPath(cluster)+"/credentials/rotate", RotateCredentialsRequest{GraceMs: graceMs}, &out)
	return out.Job, err
}

// FinishRotation removes the old password of a rotation now.
func (c *Client) FinishRotation(ctx context.Context, cluster string) (Job, error) {
	var out struct {
		Job Job `json:"job"`
	}
	err := c.do(ctx, http.MethodPost, clusterPath(cluster)+"/credentials/rotate/finish", nil, &out)
	return out.Job, err
}

// VerifyBackup starts loading a backup into a throwaway redis-server and
// comparing its key count with the record.
func (c *Client) VerifyBackup(ctx context.Context, id string) (Job, error) {
	var out struct {
		Job Job `json:"job"`
	}
	err := c.do(ctx, http.MethodPost, backupPath(id)+"/verify", struct{}{}, &out)
	return out.Job, err
}

// PutBackupSchedule sets a cluster's backup schedule and retention.
func (c *Client) PutBackupSchedule(ctx context.Context, cluster string, req BackupScheduleRequest) (BackupSchedule, error) {
	var out BackupSchedule
	err := c.do(ctx, http.MethodPut, clusterPath(cluster)+"/backup-schedule", req, &out)
	return out, err
}

// GetBackupSchedule returns a cluster's backup schedule.
func (c *Client) GetBackupSchedule(ctx context.Context, cluster string) (BackupSchedule, error) {
	var out BackupSchedule
	err := c.do(ctx, http.MethodGet, clusterPath(cluster)+"/backup-schedule", nil, &out)
	return out, err
}

// DeleteBackupSchedule removes a cluster's backup schedule; its backups stay.
func (c *Client) DeleteBackupSchedule(ctx context.Context, cluster string) (BackupSchedule, error) {
	var out BackupSchedule
	err := c.do(ctx, http.MethodDelete, clusterPath(cluster)+"/backup-schedule", nil, &out)
	return out, err
}

// ImportBackups creates records for the backups found in a target (from
// their JSON sidecars), skipping those already recorded.
func (c *Client) ImportBackups(ctx context.Context, target string) (ImportBackupsResult, error) {
	var out ImportBackupsResult
	err := c.do(ctx, http.MethodPost, "/api/v1/backups/import", ImportBackupsRequest{Target: target}, &out)
	return out, err
}

func backupPath(id string) string {
	return "/api/v1/backups/" + url.PathEscape(id)
}

func clusterPath(name string) string {
	return "/api/v1/clusters/" + url.PathEscape(name)
}

// do sends one request: body (if not nil) as JSON, and decodes a 2xx answer
// into out (if not nil). Any other status becomes an *Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: encode request: %w", method, path, err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, reqBody)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		// *url.Error already names the method and URL.
		return err
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// decodeError turns a non-2xx answer into an *Error, readable even when the
// body is not an ErrorBody (a proxy's page, a plain-text panic message).
func decodeError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{StatusCode: resp.StatusCode}
	var body ErrorBody
	if err := json.Unmarshal(raw, &body); err == nil && (body.Error.Code != "" || body.Error.Message != "") {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
		return e
	}
	// An HTML page (a proxy's) says nothing a status line doesn't.
	if !strings.Contains(resp.Header.Get("Content-Type"), "html") {
		e.Message = firstLine(string(raw))
	}
	return e
}

// firstLine returns the first non-blank line of s, shortened to stay one
// readable line.
func firstLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		const limit = 200
		if r := []rune(line); len(r) > limit {
			return string(r[:limit]) + "…"
		}
		return line
	}
	return ""
}

// IsNotFound reports whether err is a 404 answer of the server.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

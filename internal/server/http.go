package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/stream"
	"github.com/redis-manager/redis-manager/internal/timeseries"
)

// MaxBodyBytes bounds request bodies.
const MaxBodyBytes = 1 << 20

// Service is what the HTTP layer needs of the cluster service.
type Service interface {
	CreateCluster(ctx context.Context, req api.CreateClusterRequest) (api.Cluster, api.Job, error)
	GetCluster(ctx context.Context, name string) (api.Cluster, error)
	ListClusters(ctx context.Context) ([]api.Cluster, error)
	DeleteCluster(ctx context.Context, name string) (api.Job, error)
	UpdateCluster(ctx context.Context, name string, req api.UpdateClusterRequest) (api.Cluster, api.Job, error)
	Failover(ctx context.Context, name string, req api.FailoverRequest) (api.Job, error)
	Credentials(ctx context.Context, name string) (api.Credentials, error)
	RotateCredentials(ctx context.Context, name string, req api.RotateCredentialsRequest) (api.Job, error)
	FinishRotation(ctx context.Context, name string) (api.Job, error)
	Events(ctx context.Context, name string) ([]api.Event, error)
	GetJob(ctx context.Context, id string) (api.Job, error)
	ListJobs(ctx context.Context, cluster string) ([]api.Job, error)

	CreateBackup(ctx context.Context, cluster string, req api.CreateBackupRequest) (api.Job, []api.Backup, error)
	ListBackups(ctx context.Context, cluster string) ([]api.Backup, error)
	GetBackup(ctx context.Context, id string) (api.Backup, error)
	DeleteBackup(ctx context.Context, id string) (api.Job, error)
	RestoreBackup(ctx context.Context, id string, req api.RestoreRequest) (api.Cluster, api.Job, error)
	VerifyBackup(ctx context.Context, id string) (api.Job, error)
	ImportBackups(ctx context.Context, req api.ImportBackupsRequest) (api.ImportBackupsResult, error)
	PutBackupSchedule(ctx context.Context, cluster string, req api.BackupScheduleRequest) (api.BackupSchedule, error)
	GetBackupSchedule(ctx context.Context, cluster string) (api.BackupSchedule, error)
	DeleteBackupSchedule(ctx context.Context, cluster string) (api.BackupSchedule, error)
}

// httpError is an error with its status and code, for the one wrapper.
type httpError struct {
	status int
	detail api.ErrorDetail
}

func (e *httpError) Error() string { return e.detail.Message }

func badRequest(field, format string, a ...any) error {
	return &httpError{http.StatusBadRequest, api.ErrorDetail{Code: "invalid", Field: field, Message: fmt.Sprintf(format, a...)}}
}

// handler is a handler in the house style: it returns a value or an error,
// and wrap does the rest.
type handler func(r *http.Request) (status int, body any, err error)

// Leadership tells who leads, for the health endpoint.
type Leadership interface {
	Status() leader.Status
}

// HandlerConfig is what Handler serves.
type HandlerConfig struct {
	Service    Service
	Leadership Leadership
	// Token is the admin token of <data-dir>/admin.token.
	Token   string
	Version string
	// Metrics serves GET /metrics; nil: not served.
	Metrics http.Handler
	// MetricsAuth makes GET /metrics need a valid token (the admin token
	// or any API token).
	MetricsAuth bool
	// Access holds users, API tokens, sessions and the audit log; nil:
	// only the admin token is accepted and audit entries go to the log.
	Access store.Access
	// SessionIdleTimeout ends a console session not used for this long
	// (default DefaultSessionIdleTimeout).
	SessionIdleTimeout time.Duration
	// Console serves every path outside /api/ and /metrics (the web
	// console); nil: not served. It finds the signed-in principal, if any,
	// with auth.FromContext.
	Console http.Handler
	Log     *slog.Logger
	// Series serves GET /api/v1/clusters/{name}/metrics; nil: not served.
	Series *timeseries.Series
	// Stream serves GET /api/v1/stream; nil: not served.
	Stream *stream.Hub
	// Alerts serves alerts, rule overrides, silences and notifications
	// with Notifier for the test delivery; nil: not served.
	Alerts   store.Alerts
	Notifier Tester
	// Autoscaling serves the autoscaling policies; nil: not served.
	Autoscaling store.Autoscaling
	// Clusters answers GET /api/v1/clusters from what it keeps per
	// cluster revision; nil: Service.ListClusters at every request.
	Clusters *ClusterCache
}

// Handler builds the manager's HTTP handler: the API, the metrics and the
// console.
func Handler(cfg HandlerConfig) http.Handler {
	h, _ := newHandler(cfg)
	return compress(h)
}

// newHandler is Handler, also returning the gate (its routes and roles,
// for tests).
func newHandler(cfg HandlerConfig) (http.Handler, *gate) {
	svc, lead, version, metrics, log := cfg.Service, cfg.Leadership, cfg.Version, cfg.Metrics, cfg.Log
	h := &apiHandler{svc: svc, log: log}
	mux := http.NewServeMux()
	g := &gate{adminToken: cfg.Token, access: cfg.Access, idle: cfg.SessionIdleTimeout, log: log, mux: mux,
		roles: map[string]auth.Role{}, hashing: make(chan struct{}, maxHashing), now: time.Now,
		decoyHash: auth.DecoyHash(auth.DefaultParams), checked: func(string) {}}
	if g.idle <= 0 {
		g.idle = DefaultSessionIdleTimeout
	}
	// handle registers an API endpoint with the least role that may call
	// it (public: anyone); route does it for a handler in the house
	// style. There is no other way to add one: an /api/ pattern put on
	// the mux directly answers 500 (gate.ServeHTTP).
	handle := func(pattern string, need auth.Role, hh http.Handler) {
		if need != public && !need.Valid() {
			panic(fmt.Sprintf("route %s: no role", pattern))
		}
		if _, dup := g.roles[pattern]; dup {
			panic(fmt.Sprintf("route %s registered twice", pattern))
		}
		g.roles[pattern] = need
		g.patterns = append(g.patterns, pattern)
		mux.Handle(pattern, hh)
	}
	route := func(pattern string, need auth.Role, f handler) { handle(pattern, need, h.wrap(f)) }

	route("GET /api/v1/health", public, func(*http.Request) (int, any, error) {
		st := lead.Status()
		return 200, api.Health{Status: "ok", Leader: st.Leader, LeaderID: st.LeaderID, Epoch: st.Epoch, Version: version}, nil
	})
	route("POST /api/v1/clusters", auth.Operator, h.createCluster)
	listClusters := func(r *http.Request) (int, any, error) {
		cls, err := svc.ListClusters(r.Context())
		return 200, map[string]any{"clusters": cls}, err
	}
	if cfg.Clusters == nil {
		route("GET /api/v1/clusters", auth.Viewer, listClusters)
	} else {
		// The same answer, byte for byte (TestListClustersCache), from
		// the cache; an error is answered as every route's.
		fail := func(w http.ResponseWriter, r *http.Request, err error) {
			h.wrap(func(*http.Request) (int, any, error) { return 0, nil, err }).ServeHTTP(w, r)
		}
		handle("GET /api/v1/clusters", auth.Viewer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cfg.Clusters.serveList(w, r, fail)
		}))
	}
	route("GET /api/v1/clusters/{name}", auth.Viewer, func(r *http.Request) (int, any, error) {
		cl, err := svc.GetCluster(r.Context(), r.PathValue("name"))
		return 200, cl, err
	})
	route("DELETE /api/v1/clusters/{name}", auth.Admin, func(r *http.Request) (int, any, error) {
		j, err := svc.DeleteCluster(r.Context(), r.PathValue("name"))
		return 202, map[string]any{"job": j}, err
	})
	route("PATCH /api/v1/clusters/{name}", auth.Operator, func(r *http.Request) (int, any, error) {
		var req api.UpdateClusterRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		cl, job, err := svc.UpdateCluster(r.Context(), r.PathValue("name"), req)
		return http.StatusAccepted, api.ClusterJob{Cluster: &cl, Job: job}, err
	})
	route("POST /api/v1/clusters/{name}/failover", auth.Operator, func(r *http.Request) (int, any, error) {
		var req api.FailoverRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		j, err := svc.Failover(r.Context(), r.PathValue("name"), req)
		return http.StatusAccepted, map[string]any{"job": j}, err
	})
	route("GET /api/v1/clusters/{name}/events", auth.Viewer, func(r *http.Request) (int, any, error) {
		evs, err := svc.Events(r.Context(), r.PathValue("name"))
		if evs == nil {
			evs = []api.Event{}
		}
		return 200, map[string]any{"events": evs}, err
	})
	route("GET /api/v1/clusters/{name}/credentials", auth.Admin, func(r *http.Request) (int, any, error) {
		creds, err := svc.Credentials(r.Context(), r.PathValue("name"))
		if err == nil {
			setSummary(r, "read the credentials of cluster %q", truncate(r.PathValue("name"), 64))
		}
		return 200, creds, err
	})
	route("POST /api/v1/clusters/{name}/credentials/rotate", auth.Admin, func(r *http.Request) (int, any, error) {
		var req api.RotateCredentialsRequest
		if err := decodeOptional(r, &req); err != nil {
			return 0, nil, err
		}
		j, err := svc.RotateCredentials(r.Context(), r.PathValue("name"), req)
		if err == nil {
			setSummary(r, "start a password rotation of cluster %q (job %s)", truncate(r.PathValue("name"), 64), j.ID)
		}
		return http.StatusAccepted, map[string]any{"job": j}, err
	})
	route("POST /api/v1/clusters/{name}/credentials/rotate/finish", auth.Admin, func(r *http.Request) (int, any, error) {
		if err := decodeOptional(r, &struct{}{}); err != nil {
			return 0, nil, err
		}
		j, err := svc.FinishRotation(r.Context(), r.PathValue("name"))
		if err == nil {
			setSummary(r, "finish the password rotation of cluster %q by hand (job %s)", truncate(r.PathValue("name"), 64), j.ID)
		}
		return http.StatusAccepted, map[string]any{"job": j}, err
	})
	route("GET /api/v1/jobs", auth.Viewer, func(r *http.Request) (int, any, error) {
		js, err := svc.ListJobs(r.Context(), r.URL.Query().Get("cluster"))
		return 200, map[string]any{"jobs": js}, err
	})
	route("GET /api/v1/jobs/{id}", auth.Viewer, func(r *http.Request) (int, any, error) {
		j, err := svc.GetJob(r.Context(), r.PathValue("id"))
		return 200, j, err
	})
	h.backupRoutes(route)
	g.accessRoutes(route)
	// The stream writes its own answer: handle registers it with its role.
	h.seriesRoutes(route, handle, cfg.Series, cfg.Stream)
	if cfg.Autoscaling != nil {
		h.autoscaleRoutes(route, cfg.Autoscaling)
	}
	if cfg.Alerts != nil && cfg.Notifier != nil {
		h.alertRoutes(route, cfg.Alerts, cfg.Notifier)
	}
	route("/api/", auth.Viewer, func(r *http.Request) (int, any, error) {
		return 0, nil, &httpError{http.StatusNotFound, api.ErrorDetail{Code: "not_found",
			Message: fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path)}}
	})
	if metrics != nil {
		if cfg.MetricsAuth {
			metrics = requireBearer(metrics)
		}
		mux.Handle("GET /metrics", metrics)
	}
	if cfg.Console != nil {
		mux.Handle("/", cfg.Console)
	}
	return g, g
}

type apiHandler struct {
	svc Service
	log *slog.Logger
}

// wrap is the one place that encodes JSON, maps errors to statuses and logs.
func (h *apiHandler) wrap(f handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		status, body, err := f(r)
		n := noteOf(r)
		if err != nil {
			var detail api.ErrorDetail
			status, detail = h.mapError(err)
			body = api.ErrorBody{Error: detail}
			if status >= 500 {
				h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			// The code and field only: a message may quote the request.
			if n.summary == "" {
				n.summary = "failed: " + detail.Code
			} else {
				n.summary += ": failed: " + detail.Code
			}
			if detail.Field != "" {
				n.summary += " (field " + detail.Field + ")"
			}
		} else if n.summary == "" {
			n.summary = summarize(body)
		}
		if n.cookie != nil {
			http.SetCookie(w, n.cookie)
		}
		if status == http.StatusNoContent {
			w.WriteHeader(status)
		} else {
			writeJSON(w, status, body)
		}
		h.log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", status, "took", time.Since(start))
	})
}

// summarize is the default audit summary of a successful answer: the job
// it started, if any.
func summarize(body any) string {
	var j api.Job
	switch b := body.(type) {
	case map[string]any:
		j, _ = b["job"].(api.Job)
	case api.ClusterJob:
		j = b.Job
	case api.BackupsJob:
		j = b.Job
	}
	if j.ID != "" {
		return fmt.Sprintf("job %s (%s %s)", j.ID, j.Kind, j.Cluster)
	}
	return "ok"
}

func (h *apiHandler) mapError(err error) (int, api.ErrorDetail) {
	var he *httpError
	var fe *spec.FieldError
	var ce *jobspec.Error
	switch {
	case errors.As(err, &he):
		return he.status, he.detail
	case errors.As(err, &fe):
		status, code := http.StatusBadRequest, "invalid"
		if fe.Kind == spec.Unprocessable {
			status, code = http.StatusUnprocessableEntity, "unprocessable"
		}
		return status, api.ErrorDetail{Code: code, Field: fe.Field, Message: fe.Error()}
	case errors.As(err, &ce) && errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, api.ErrorDetail{Code: "not_found", Message: ce.Msg}
	case errors.As(err, &ce) && errors.Is(err, store.ErrConflict):
		return http.StatusConflict, api.ErrorDetail{Code: "conflict", Message: ce.Msg}
	}
	return http.StatusInternalServerError, api.ErrorDetail{Code: "internal", Message: err.Error()}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}

// decode reads a JSON body strictly: bounded size, no unknown fields, one
// value, errors that name the field.
func decode(r *http.Request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			return badRequest("", "request body must hold a single JSON object")
		}
		return nil
	}
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		return &httpError{http.StatusRequestEntityTooLarge, api.ErrorDetail{Code: "too_large",
			Message: fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes)}}
	case errors.Is(err, io.EOF):
		return badRequest("", "request body is empty; send a JSON object")
	case errors.As(err, &syntaxErr):
		return badRequest("", "malformed JSON at byte %d: %v", syntaxErr.Offset, err)
	case errors.As(err, &typeErr):
		return badRequest(typeErr.Field, "field %q must be a JSON %s, got %s", typeErr.Field, typeErr.Type, typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(field, "unknown field %q", field)
	}
	return badRequest("", "malformed JSON: %v", err)
}

// backupRoutes are the endpoints of API.md's "Backups".
func (h *apiHandler) backupRoutes(route func(string, auth.Role, handler)) {
	svc := h.svc
	route("POST /api/v1/clusters/{name}/backups", auth.Operator, func(r *http.Request) (int, any, error) {
		var req api.CreateBackupRequest
		if err := decodeOptional(r, &req); err != nil {
			return 0, nil, err
		}
		j, bs, err := svc.CreateBackup(r.Context(), r.PathValue("name"), req)
		return http.StatusAccepted, api.BackupsJob{Job: j, Backups: bs}, err
	})
	route("GET /api/v1/clusters/{name}/backups", auth.Viewer, func(r *http.Request) (int, any, error) {
		bs, err := svc.ListBackups(r.Context(), r.PathValue("name"))
		return 200, map[string]any{"backups": bs}, err
	})
	route("GET /api/v1/clusters/{name}/backup-schedule", auth.Viewer, func(r *http.Request) (int, any, error) {
		s, err := svc.GetBackupSchedule(r.Context(), r.PathValue("name"))
		return 200, s, err
	})
	route("PUT /api/v1/clusters/{name}/backup-schedule", auth.Operator, func(r *http.Request) (int, any, error) {
		var req api.BackupScheduleRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		s, err := svc.PutBackupSchedule(r.Context(), r.PathValue("name"), req)
		return 200, s, err
	})
	route("DELETE /api/v1/clusters/{name}/backup-schedule", auth.Operator, func(r *http.Request) (int, any, error) {
		s, err := svc.DeleteBackupSchedule(r.Context(), r.PathValue("name"))
		return 200, s, err
	})
	route("POST /api/v1/backups/import", auth.Operator, func(r *http.Request) (int, any, error) {
		var req api.ImportBackupsRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		res, err := svc.ImportBackups(r.Context(), req)
		return 200, res, err
	})
	route("GET /api/v1/backups/{id}", auth.Viewer, func(r *http.Request) (int, any, error) {
		b, err := svc.GetBackup(r.Context(), r.PathValue("id"))
		return 200, b, err
	})
	route("DELETE /api/v1/backups/{id}", auth.Admin, func(r *http.Request) (int, any, error) {
		j, err := svc.DeleteBackup(r.Context(), r.PathValue("id"))
		return http.StatusAccepted, map[string]any{"job": j}, err
	})
	route("POST /api/v1/backups/{id}/restore", auth.Operator, func(r *http.Request) (int, any, error) {
		var req api.RestoreRequest
		if err := decode(r, &req); err != nil {
			return 0, nil, err
		}
		cl, j, err := svc.RestoreBackup(r.Context(), r.PathValue("id"), req)
		return http.StatusAccepted, api.ClusterJob{Cluster: &cl, Job: j}, err
	})
	route("POST /api/v1/backups/{id}/verify", auth.Operator, func(r *http.Request) (int, any, error) {
		if err := decodeOptional(r, &struct{}{}); err != nil {
			return 0, nil, err
		}
		j, err := svc.VerifyBackup(r.Context(), r.PathValue("id"))
		return http.StatusAccepted, map[string]any{"job": j}, err
	})
}

// decodeOptional is decode for endpoints whose body may be left out.
func decodeOptional(r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return decode(r, v)
}

func (h *apiHandler) createCluster(r *http.Request) (int, any, error) {
	var req api.CreateClusterRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	cl, job, err := h.svc.CreateCluster(r.Context(), req)
	return http.StatusAccepted, api.ClusterJob{Cluster: &cl, Job: job}, err
}

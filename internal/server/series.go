package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/stream"
	"github.com/redis-manager/redis-manager/internal/timeseries"
)

const (
	// streamPing is how often an idle stream sends a comment line, so
	// proxies and clients see it alive.
	streamPing = 15 * time.Second
	// streamWriteTimeout bounds one write of the stream: a client that
	// reads nothing for that long is dropped (it reconnects).
	streamWriteTimeout = 30 * time.Second
)

// benchSeries is nil but in binaries built with -tags benchfill
// (benchfill.go, for bench/timeseries): it fills the series with synthetic
// samples before the manager listens.
var benchSeries func(*timeseries.Series, timeseries.Lister) timeseries.Lister

// seriesRoutes are the endpoints of the instance figures: the time series
// and the live stream. The stream writes its own response, so it is
// registered with raw rather than route.
func (h *apiHandler) seriesRoutes(route func(string, auth.Role, handler), raw func(string, auth.Role, http.Handler), series *timeseries.Series, hub *stream.Hub) {
	if series != nil {
		route("GET /api/v1/clusters/{name}/metrics", auth.Viewer, func(r *http.Request) (int, any, error) {
			return h.metrics(r, series)
		})
	}
	if hub != nil {
		// Viewers too: the stream carries what their GETs show (clusters,
		// jobs, events), no credential.
		raw("GET /api/v1/stream", auth.Viewer, h.stream(hub))
	}
}

func (h *apiHandler) metrics(r *http.Request, series *timeseries.Series) (int, any, error) {
	q := r.URL.Query()
	rng := q.Get("range")
	if rng == "" {
		rng = "1h"
	}
	if _, ok := timeseries.Ranges[rng]; !ok {
		return 0, nil, badRequest("range", "range %q: want 1h, 6h or 24h", rng)
	}
	name, inst := r.PathValue("name"), q.Get("instance")
	cl, err := h.svc.GetCluster(r.Context(), name)
	if err != nil {
		return 0, nil, err
	}
	m, _ := series.Query(name, rng, inst, time.Now())
	if inst != "" && len(m.Instances) == 0 && !hasInstance(cl, inst) {
		return 0, nil, &httpError{http.StatusNotFound, api.ErrorDetail{Code: "not_found", Field: "instance",
			Message: fmt.Sprintf("cluster %q has no instance %q", name, inst)}}
	}
	return 200, m, nil
}

func hasInstance(cl api.Cluster, name string) bool {
	for _, sh := range cl.Status.Shards {
		if sh.Master != nil && sh.Master.Name == name {
			return true
		}
		for _, r := range sh.Replicas {
			if r.Name == name {
				return true
			}
		}
	}
	return false
}

// stream serves GET /api/v1/stream as server-sent events: the snapshot,
// then every change the hub reads from the store, and a ping comment
// every 15 s.
func (h *apiHandler) stream(hub *stream.Hub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(err error) {
			status, detail := h.mapError(err)
			writeJSON(w, status, api.ErrorBody{Error: detail})
		}
		cluster := r.URL.Query().Get("cluster")
		if cluster != "" {
			if _, err := h.svc.GetCluster(r.Context(), cluster); err != nil {
				fail(err)
				return
			}
		}
		rc := http.NewResponseController(w)
		// No read deadline (net/http lifts it anyway once a bodiless HTTP/1
		// request runs); the server's write timeout is replaced by a
		// deadline per write, below.
		_ = rc.SetReadDeadline(time.Time{})
		snap, sub, err := hub.Subscribe(r.Context(), cluster)
		if err != nil {
			return // the client left
		}
		defer hub.Unsubscribe(sub)
		hd := w.Header()
		hd.Set("Content-Type", "text/event-stream")
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		write := func(b []byte) bool {
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if _, err := w.Write(b); err != nil {
				return false
			}
			return rc.Flush() == nil
		}
		if !write([]byte("retry: 2000\n\n")) {
			return
		}
		for _, f := range snap {
			if !write(f.Data) {
				return
			}
		}
		ping := time.NewTicker(streamPing)
		defer ping.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case batch, ok := <-sub.C():
				if !ok {
					return // fell behind, or the server stops: the client reconnects
				}
				var b []byte
				for _, f := range batch {
					b = append(b, f.Data...)
				}
				if !write(b) {
					return
				}
			case <-ping.C:
				if !write([]byte(": ping\n\n")) {
					return
				}
			}
		}
	})
}

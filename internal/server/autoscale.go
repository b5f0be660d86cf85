package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/autoscale"
	"github.com/redis-manager/redis-manager/internal/store"
)

// decisionsShown is how many of the newest autoscale events GET shows.
const decisionsShown = 20

// autoscaleRoutes are the endpoints of API.md's autoscaling: the policy,
// the engine's last readings and state, and the newest decisions.
func (h *apiHandler) autoscaleRoutes(route func(string, auth.Role, handler), st store.Autoscaling) {
	route("GET /api/v1/clusters/{name}/autoscaling", auth.Viewer, func(r *http.Request) (int, any, error) {
		name := r.PathValue("name")
		if _, err := h.svc.GetCluster(r.Context(), name); err != nil {
			return 0, nil, err
		}
		p, err := st.GetAutoscalePolicy(r.Context(), name)
		if err != nil {
			return 0, nil, storeNotFound(err, "cluster \""+name+"\" has no autoscaling policy")
		}
		out, err := autoscaling(r.Context(), st, name, p)
		return 200, out, err
	})
	route("PUT /api/v1/clusters/{name}/autoscaling", auth.Operator, func(r *http.Request) (int, any, error) {
		name := r.PathValue("name")
		var p api.AutoscalePolicy
		if err := decode(r, &p); err != nil {
			return 0, nil, err
		}
		cl, err := h.svc.GetCluster(r.Context(), name)
		if err != nil {
			return 0, nil, err
		}
		p, err = autoscale.Normalize(p, cl.Spec)
		if err != nil {
			return 0, nil, err
		}
		if err := st.PutAutoscalePolicy(r.Context(), name, p); err != nil {
			return 0, nil, err
		}
		noteOf(r).summary = "autoscaling policy of " + name
		out, err := autoscaling(r.Context(), st, name, p)
		return 200, out, err
	})
	route("DELETE /api/v1/clusters/{name}/autoscaling", auth.Operator, func(r *http.Request) (int, any, error) {
		name := r.PathValue("name")
		if _, err := h.svc.GetCluster(r.Context(), name); err != nil {
			return 0, nil, err
		}
		if err := st.DeleteAutoscalePolicy(r.Context(), name); err != nil {
			return 0, nil, storeNotFound(err, "cluster \""+name+"\" has no autoscaling policy")
		}
		noteOf(r).summary = "autoscaling of " + name + " off"
		return http.StatusNoContent, nil, nil
	})
}

func autoscaling(ctx context.Context, st store.Autoscaling, name string, p api.AutoscalePolicy) (api.Autoscaling, error) {
	state, err := st.GetAutoscaleState(ctx, name)
	if err != nil {
		return api.Autoscaling{}, err
	}
	evs, err := st.ListEventsOfType(ctx, name, api.EventAutoscale, decisionsShown)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return api.Autoscaling{}, err
	}
	if evs == nil {
		evs = []api.Event{}
	}
	return api.Autoscaling{Cluster: name, Policy: p, State: state, Decisions: evs}, nil
}

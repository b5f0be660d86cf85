package console_test

import (
	"log/slog"
	"net/http"

	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/server"
)

const testToken = "console-test-token"

type noLeader struct{}

func (noLeader) Status() leader.Status { return leader.Status{} }

// apiHandler is the real API over the fixture's service, console mounted.
func apiHandler(f *fixture) http.Handler {
	return server.Handler(server.HandlerConfig{Service: f.svc, Leadership: noLeader{}, Token: testToken, Version: "test",
		Console: f.h, Log: slog.New(slog.DiscardHandler)})
}

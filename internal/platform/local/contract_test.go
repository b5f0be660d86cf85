package local

import (
	"context"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/platform/platformtest"
	"github.com/redis-manager/redis-manager/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestContract runs the platform contract against real redis-server
// processes; tasks run as child processes of the built redis-manager.
func TestContract(t *testing.T) {
	t.Parallel()
	platformtest.Run(t, platformtest.Harness{
		New: func(t *testing.T, asker *platformtest.Asker) platform.Platform {
			lo, hi := testenv.PortRange(t, 8)
			p, err := New(instanceRoot(t), "", Options{PortLo: lo, PortHi: hi, Asker: asker, Self: testenv.Binary(t)}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		Restart: func(t *testing.T, p platform.Platform) platform.Platform {
			old := p.(*Platform)
			p2, err := New(old.root, old.binary, old.opts, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			return p2
		},
		Kill: func(t *testing.T, p platform.Platform, in platform.Instance) {
			if err := syscall.Kill(in.Details.Pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		},
		Ready: func(t *testing.T, in platform.Instance, password string) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c := redis.NewClient(&redis.Options{Addr: in.Endpoint.String(), Password: password, Protocol: 2, DisableIdentity: true, MaxRetries: -1})
			defer c.Close()
			if err := c.Ping(ctx).Err(); err != nil {
				t.Fatalf("PING %s at %s: %v", in.ID, in.Endpoint, err)
			}
		},
	})
}

package fake

import (
	"testing"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/platform/platformtest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	platformtest.Run(t, platformtest.Harness{
		New: func(t *testing.T, asker *platformtest.Asker) platform.Platform {
			return New(Options{Limit: 8, Asker: asker})
		},
		Restart: func(t *testing.T, p platform.Platform) platform.Platform { return p.(*Platform).Restart() },
		Kill: func(t *testing.T, p platform.Platform, in platform.Instance) {
			if err := p.(*Platform).Kill(in.ID); err != nil {
				t.Fatal(err)
			}
		},
	})
}

package server

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"

	"github.com/redis-manager/redis-manager/internal/leader"
	"github.com/redis-manager/redis-manager/internal/leader/kubelease"
)

const (
	electionStore      = "store"
	electionKubernetes = "kubernetes"
)

// Election is how managers sharing a store elect their leader
// (docs/kubernetes.md, "The manager in the cluster").
type Election struct {
	// Mode: "store", the lease row in the store alone; "kubernetes", a
	// coordination.k8s.io Lease whose holder alone takes the store lease
	// (whose epoch still fences every store write).
	Mode string
	// LeaseName is the Kubernetes Lease, in the platform's namespace.
	LeaseName string
	// The Lease's timing, as client-go names it.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

func addElectionFlags(f *pflag.FlagSet, o *Options) {
	f.StringVar(&o.Election.Mode, "leader-election", electionStore, "how managers sharing a MySQL store elect their leader: store (a lease row in the store) | kubernetes (a coordination.k8s.io Lease; needs --platform kubernetes)")
	f.StringVar(&o.Election.LeaseName, "lease-name", "redis-manager", "--leader-election kubernetes: the Lease's name, in --namespace")
	f.DurationVar(&o.Election.LeaseDuration, "lease-duration", kubelease.LeaseDuration, "--leader-election kubernetes: how long a standby waits without seeing a renewal before it takes the Lease over (whole seconds)")
	f.DurationVar(&o.Election.RenewDeadline, "lease-renew-deadline", kubelease.RenewDeadline, "--leader-election kubernetes: how long the leader tries to renew before it stops leading (< --lease-duration)")
	f.DurationVar(&o.Election.RetryPeriod, "lease-retry-period", kubelease.RetryPeriod, "--leader-election kubernetes: how often the leader renews and standbys try")
}

// check validates the election against the platform and store.
func (e Election) check(platform string, sqlite bool) error {
	switch e.Mode {
	case electionStore:
		return nil
	case electionKubernetes:
	default:
		return fmt.Errorf("--leader-election %q: want store or kubernetes", e.Mode)
	}
	if platform != "kubernetes" {
		return fmt.Errorf("--leader-election kubernetes needs --platform kubernetes")
	}
	if sqlite {
		return fmt.Errorf("--leader-election kubernetes: managers electing a leader share a MySQL/MariaDB store (--store mysql://...), not SQLite")
	}
	if e.LeaseName == "" {
		return fmt.Errorf("--lease-name: empty")
	}
	if !(e.RetryPeriod > 0 && e.RenewDeadline > e.RetryPeriod*12/10 && e.LeaseDuration > e.RenewDeadline) {
		return fmt.Errorf("--lease-duration %s, --lease-renew-deadline %s, --lease-retry-period %s: want duration > renew deadline > 1.2 × retry period > 0",
			e.LeaseDuration, e.RenewDeadline, e.RetryPeriod)
	}
	return nil
}

// lease builds the Kubernetes Lease lock.
func (e Election) lease(cs kubernetes.Interface, namespace, id string, log *slog.Logger) (leader.Outer, error) {
	return kubelease.New(kubelease.Config{Client: cs, Namespace: namespace, Name: e.LeaseName, Identity: id,
		LeaseDuration: e.LeaseDuration, RenewDeadline: e.RenewDeadline, RetryPeriod: e.RetryPeriod}, log)
}

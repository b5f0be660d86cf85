package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/jobspec"
	"github.com/redis-manager/redis-manager/internal/sentinel"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// Password rotation without downtime. Redis' ACL lets the default user
// hold several passwords at once, so the new one is added next to the old
// one on every instance (ACL SETUSER default >new), replicas authenticate
// to their master with it (CONFIG SET masterauth), the Sentinels use it
// (SENTINEL SET auth-pass), and only then does the manager switch to it.
// Clients move at their pace; the old password is removed when the grace
// period ends or when asked (ACL SETUSER default <old). Nothing restarts.
// An instance that boots meanwhile renders every password the cluster
// accepts (spec.RedisConfig.ExtraPasswords).

// sentinelPw is the password that reaches the Sentinels during the rotate
// job: the new one once the add-sentinel-password step has run on all of
// them is not known here, and the current one is accepted throughout.
func sentinelPw(cl store.Cluster) string { return cl.SentinelPassword }

// finishDueRotations stores a finish job for every rotation whose grace
// period is over. A busy lane is tried again at the next tick.
func (c *Controller) finishDueRotations(ctx context.Context, now time.Time) {
	// One cheap query a second: no cluster's secrets are decrypted for it.
	due, err := c.store.DueRotations(ctx, now)
	if err != nil {
		c.log.Error("list due password rotations", "err", err)
		return
	}
	for _, name := range due {
		job := newJob(api.JobFinishRotation, name, now.UTC())
		if err := c.store.CreateJob(ctx, job); err != nil {
			if !errors.Is(err, store.ErrConflict) {
				c.log.Error("store the end of a password rotation", "cluster", name, "err", err)
			}
			continue
		}
		c.log.Info("grace period over: removing the old password", "cluster", name, "job", job.ID)
		c.Kick()
	}
}

// forEachRunning runs f on every redis-server of the cluster the platform
// runs, in parallel. One that runs but cannot be changed fails the step (it
// is retried): it would go on accepting a password it must not, or refuse
// the new one.
func (c *Controller) forEachRunning(ctx context.Context, redis []store.Instance, f func(in store.Instance) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, in := range redis {
		_, running, err := c.instanceRunning(ctx, in)
		if err != nil {
			return err
		}
		if !running {
			continue // it renders every accepted password when it boots
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(in); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", in.Name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func rotateSteps() []step {
	return []step{
		{"add-password", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, _ []store.Instance) error {
				if cl.Rotation.Next == "" {
					return nil // switched before a restart
				}
				return r.c.forEachRunning(ctx, redis, func(in store.Instance) error {
					rc := r.c.pool.Redis(addr(in), cl.Password)
					if err := rc.Do(ctx, "acl", "setuser", "default", "on", ">"+cl.Rotation.Next).Err(); err != nil {
						return fmt.Errorf("add the new password: %w", err)
					}
					// Replicas authenticate to their master with it from
					// their next connection on; the master accepts both.
					if err := rc.ConfigSet(ctx, "masterauth", cl.Rotation.Next).Err(); err != nil {
						return fmt.Errorf("set masterauth: %w", err)
					}
					return nil
				})
			})
		}},
		{"add-sentinel-password", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, _, sentinels []store.Instance) error {
				if cl.Rotation.NextSentinel == "" {
					return nil // switched before a restart
				}
				return r.c.forEachRunning(ctx, sentinels, func(s store.Instance) error {
					sc := r.c.pool.Redis(addr(s), cl.SentinelPassword)
					// Clients and the other Sentinels may use either from now.
					if err := sc.Do(ctx, "acl", "setuser", "default", "on", ">"+cl.Rotation.NextSentinel).Err(); err != nil {
						return fmt.Errorf("add the new Sentinel password: %w", err)
					}
					// It talks to the other Sentinels with the new one, which
					// they accept once this step is done on each of them; until
					// then a hello may be refused, and is sent again a second
					// later.
					return sentinel.SetSentinelPass(ctx, sc, cl.Rotation.NextSentinel)
				})
			})
		}},
		{"set-sentinel-auth", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, _, sentinels []store.Instance) error {
				pw := cl.Rotation.Next
				if pw == "" {
					pw = cl.Password // switched before a restart: set it again
				}
				for _, s := range sentinels {
					if _, running, err := r.c.instanceRunning(ctx, s); err != nil || !running {
						if err != nil {
							return err
						}
						continue // re-registered with the current password when it is repaired
					}
					sc := r.c.pool.Redis(addr(s), sentinelPw(cl))
					for shard := 0; shard < cl.Spec.Shards; shard++ {
						if err := sentinel.SetAuthPass(ctx, sc, spec.MasterName(cl.Name, shard), pw); err != nil && !sentinel.IsNoSuchMaster(err) {
							return fmt.Errorf("%s: %w", s.Name, err)
						}
					}
				}
				return nil
			})
		}},
		{"switch-password", func(ctx context.Context, r *jobRun) error {
			cl, err := r.c.getCluster(ctx, r.job.Cluster)
			if err != nil {
				return err
			}
			if cl.Rotation.Next == "" {
				return nil
			}
			var p jobspec.RotateParams
			if err := json.Unmarshal(r.job.Params, &p); err != nil {
				return fmt.Errorf("read job parameters: %w", err)
			}
			ends := time.Now().UTC().Add(time.Duration(p.GraceMs) * time.Millisecond).Truncate(time.Millisecond)
			rot := store.Rotation{Old: cl.Password, EndsAt: &ends}
			spw := cl.SentinelPassword
			if cl.Rotation.NextSentinel != "" {
				rot.OldSentinel, spw = cl.SentinelPassword, cl.Rotation.NextSentinel
			}
			if err := r.c.store.SetRotation(ctx, cl.Name, cl.Rotation.Next, spw, rot); err != nil {
				return err
			}
			r.c.event(ctx, cl.Name, nil, "credentials-rotated",
				fmt.Sprintf("new password in use; the old one is accepted until %s", ends.Format(time.RFC3339)),
				map[string]any{"oldPasswordValidUntil": ends, "graceMs": p.GraceMs})
			return r.c.syncRedisConfig(ctx, cl.Name)
		}},
	}
}

func finishRotationSteps() []step {
	return []step{
		{"remove-old-password", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, redis, _ []store.Instance) error {
				if cl.Rotation.Old == "" || cl.Rotation.Old == cl.Password {
					return nil
				}
				return r.c.forEachRunning(ctx, redis, func(in store.Instance) error {
					err := r.c.pool.Redis(addr(in), cl.Password).Do(ctx, "acl", "setuser", "default", "<"+cl.Rotation.Old).Err()
					if err != nil {
						return fmt.Errorf("remove the old password: %w", err)
					}
					return nil
				})
			})
		}},
		{"remove-old-sentinel-password", func(ctx context.Context, r *jobRun) error {
			return r.withInstances(ctx, func(cl store.Cluster, _, sentinels []store.Instance) error {
				if cl.Rotation.OldSentinel == "" || cl.Rotation.OldSentinel == cl.SentinelPassword {
					return nil
				}
				return r.c.forEachRunning(ctx, sentinels, func(s store.Instance) error {
					sc := r.c.pool.Redis(addr(s), cl.SentinelPassword)
					if err := sc.Do(ctx, "acl", "setuser", "default", "<"+cl.Rotation.OldSentinel).Err(); err != nil {
						return fmt.Errorf("remove the old Sentinel password: %w", err)
					}
					return sentinel.FlushConfig(ctx, sc)
				})
			})
		}},
		{"forget-old-password", func(ctx context.Context, r *jobRun) error {
			cl, err := r.c.getCluster(ctx, r.job.Cluster)
			if err != nil {
				return err
			}
			if cl.Rotation.Old == "" {
				return nil
			}
			if err := r.c.store.SetRotation(ctx, cl.Name, cl.Password, cl.SentinelPassword, store.Rotation{}); err != nil {
				return err
			}
			r.c.event(ctx, cl.Name, nil, "credentials-rotation-finished", "the old passwords are no longer accepted", nil)
			return r.c.syncRedisConfig(ctx, cl.Name)
		}},
	}
}

// syncRedisConfig has the platform keep what a restarted redis-server boots
// with in step with the cluster's record (Kubernetes: the Secret the pods'
// entrypoint reads the passwords from; the kubelet restarts a container
// without asking the manager).
func (c *Controller) syncRedisConfig(ctx context.Context, name string) error {
	cl, err := c.getCluster(ctx, name)
	if err != nil {
		return err
	}
	redis, sentinels, err := c.instancesOf(ctx, name)
	if err != nil {
		return err
	}
	return c.keepBootConfig(ctx, cl, redis, sentinels, cl.Spec.Shards)
}

// keepBootConfig ensures every running redis-server of the shards below
// shards with cl's configuration: the platform records what the instance
// boots with next time; Ensure of a running instance restarts nothing.
func (c *Controller) keepBootConfig(ctx context.Context, cl store.Cluster, redis, sentinels []store.Instance, shards int) error {
	masters := map[int]string{}
	var kept []store.Instance
	for shard := 0; shard < shards; shard++ {
		masters[shard] = c.currentMaster(ctx, cl, shard, redis, sentinels)
	}
	for _, in := range redis {
		if in.Shard < shards {
			kept = append(kept, in)
		}
	}
	return c.forEachRunning(ctx, kept, func(in store.Instance) error {
		return c.ensureRedis(ctx, cl, in, masters[in.Shard], sentinels)
	})
}

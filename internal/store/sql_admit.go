package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/redis-manager/redis-manager/api"
)

// Admit serializes admissions with a row lock on admission_lock (taken by
// an UPDATE on SQLite, which has one connection anyway, and SELECT … FOR
// UPDATE on MySQL), then reads what check needs and stores the cluster and
// the job, all in one transaction.
func (s *sqlStore) Admit(ctx context.Context, c *Cluster, j Job, check func(Admission) error) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		lock := "SELECT id FROM admission_lock WHERE id = 1 FOR UPDATE"
		if s.d.name == sqliteDialect.name {
			lock = "UPDATE admission_lock SET id = 1 WHERE id = 1"
		}
		if _, err := tx.ExecContext(ctx, lock); err != nil {
			return fmt.Errorf("take the admission lock: %w", err)
		}
		var a Admission
		var err error
		if a.Instances, err = s.queryInstancesIn(ctx, tx, "SELECT "+instanceCols+" FROM instances ORDER BY cluster, shard, ordinal, name"); err != nil {
			return err
		}
		if a.Unfinished, err = s.queryJobsIn(ctx, tx, "SELECT "+jobCols+" FROM jobs WHERE state IN (?, ?) ORDER BY created_at, id",
			api.StatePending, api.StateRunning); err != nil {
			return err
		}
		if a.Specs, err = s.specsIn(ctx, tx); err != nil {
			return err
		}
		if err := check(a); err != nil {
			return err
		}
		if c != nil {
			if err := s.insertCluster(ctx, tx, *c); err != nil {
				return err
			}
		}
		return s.insertJob(ctx, tx, j)
	})
	if err != nil {
		return fmt.Errorf("admit job %s of cluster %q: %w", j.Kind, j.Cluster, err)
	}
	return nil
}

// specsIn reads every cluster's spec (no secrets are decrypted).
func (s *sqlStore) specsIn(ctx context.Context, q querier) (map[string]api.ClusterSpec, error) {
	rows, err := q.QueryContext(ctx, "SELECT name, spec FROM clusters")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]api.ClusterSpec{}
	for rows.Next() {
		var name, raw string
		if err := rows.Scan(&name, &raw); err != nil {
			return nil, err
		}
		var sp api.ClusterSpec
		if err := json.Unmarshal([]byte(raw), &sp); err != nil {
			return nil, fmt.Errorf("decode spec of cluster %q: %w", name, err)
		}
		out[name] = sp
	}
	return out, rows.Err()
}

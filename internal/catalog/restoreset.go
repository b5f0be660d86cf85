package catalog

import (
	"fmt"
	"sort"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// RestoreSet returns the backups a restore of b brings back, ordered by
// shard: b alone (single, or a backup of no job), or every backup its job
// took. all are the records of b's cluster; jobMembers are the ids the
// job's parameters name, nil when the job is unknown (after an import),
// and then the records of the job are the set. A set with a member that
// failed or was deleted is refused, rather than restored with a shard
// silently missing. It is pure.
func RestoreSet(b store.Backup, single bool, all []store.Backup, jobMembers []string) ([]store.Backup, error) {
	if single || b.Job == "" {
		return []store.Backup{b}, nil
	}
	byID := map[string]store.Backup{}
	var members []string
	for _, o := range all {
		if o.Job == b.Job {
			byID[o.ID] = o
			members = append(members, o.ID)
		}
	}
	// The job's parameters name every backup it took, even deleted ones
	// (jobs stay as history).
	if len(jobMembers) > 0 {
		members = jobMembers
	}
	incomplete := func(why string) error {
		return &spec.FieldError{Kind: spec.Unprocessable, Field: "singleShard", Message: fmt.Sprintf(
			"the backup set of job %s is incomplete: %s; restore backup %s alone with \"singleShard\": true (CLI --single-shard)", b.Job, why, b.ID)}
	}
	var set []store.Backup
	for _, id := range members {
		m, ok := byID[id]
		if !ok {
			return nil, incomplete(fmt.Sprintf("backup %s was deleted", id))
		}
		if m.State != api.StateSucceeded {
			return nil, incomplete(fmt.Sprintf("backup %s of shard %d is %s", m.ID, m.Shard, m.State))
		}
		set = append(set, m)
	}
	sort.Slice(set, func(i, j int) bool { return set[i].Shard < set[j].Shard })
	return set, nil
}

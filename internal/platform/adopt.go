package platform

import "context"

// SnapshotAdopter is what a platform may offer besides TaskRunner: its
// snapshot tasks outlive the manager that started them (Kubernetes: a Job),
// so a manager that resumes a backup can follow the snapshot a previous
// leader started for the same object instead of starting another.
type SnapshotAdopter interface {
	// AdoptSnapshot finds the snapshot task writing the object key (the
	// key a backup record names) and follows it to its end, as RunTask
	// would have. found is false when there is none to follow (it ended
	// and was removed, or never started): the caller runs a new one.
	AdoptSnapshot(ctx context.Context, key string, progress func(TaskProgress)) (res TaskResult, found bool, err error)
}

package jobspec

import "github.com/redis-manager/redis-manager/api"

// ScaleParams are what a scale job needs to resume: where it started and
// where it goes.
type ScaleParams struct {
	From api.ClusterSpec `json:"from"`
	To   api.ClusterSpec `json:"to"`
}

// FailoverParams name the shard of a planned failover.
type FailoverParams struct {
	Shard int `json:"shard"`
}

// BackupParams is what a backup job remembers: the records it fills in.
type BackupParams struct {
	Backups []string `json:"backups"`
}

// BackupRefParams names the one backup a verify or delete job works on.
type BackupRefParams struct {
	Backup string `json:"backup"`
}

// RestoreParams is what a restore job remembers: which backup each shard
// of the new cluster boots from.
type RestoreParams struct {
	Backups []RestoreShard `json:"backups"`
}

// RestoreShard is the backup one shard of a restored cluster boots from.
type RestoreShard struct {
	Shard  int    `json:"shard"`
	Backup string `json:"backup"`
}

// RotateParams is what a password rotation job remembers: how long the old
// password stays valid once the new one is in use.
type RotateParams struct {
	GraceMs int64 `json:"graceMs"`
}

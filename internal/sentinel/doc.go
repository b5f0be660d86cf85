// Package sentinel holds the manager's conversations with Redis Sentinel:
// registering and forgetting shards, and reading a Sentinel's view of them.
// Sentinel stays the source of truth for which instance is master.
package sentinel

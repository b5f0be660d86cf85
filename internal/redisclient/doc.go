// Package redisclient keeps one pooled go-redis client per instance address
// (the manager talks to the same instances every few seconds; opening a
// connection per call is what made other operators slow) and parses INFO.
package redisclient

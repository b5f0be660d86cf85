// Package benchenv starts a redis-manager server for the benchmark programs
// in bench/, the same way a user would: the real binary, its own data dir.
package benchenv

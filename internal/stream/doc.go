// Package stream follows the store for GET /api/v1/stream: one poller,
// shared by every subscriber, reads the clusters, the recent jobs and each
// cluster's newest event every 500 ms (and the unfinished jobs alone every
// 100 ms, so a job shorter than a second still shows its progress),
// compares them with what it read the time before, and hands each change
// to the subscribers as server-sent events. It runs only while someone
// listens. Because it reads the store, where the leader writes, it works
// the same on every manager.
package stream

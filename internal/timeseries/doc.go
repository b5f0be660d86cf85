// Package timeseries keeps, in memory, each instance's figures every 10 s
// for 24 h (ops/s, used memory, clients, keys, hit ratio, replica lag,
// CPU), taken from the cluster statuses the control loop stores. Every
// manager keeps its own series from the moment it starts (a Sampler runs
// in each, leader or not), so a manager's series begin when it starts.
//
// Storage: samples sit on 10 s slots aligned to the Unix epoch, so no
// timestamp is stored per point. Slots are grouped 64 to a chunk; a closed
// chunk holds a presence bitmap and, per series, the first value and the
// differences to the previous value bit-packed at the width of the
// largest (zigzag) difference in the chunk: a steady series costs 0 bits
// per point, a noisy one a few. An instance holds at most
// MaxBytesPerInstance of closed chunks; the oldest go first. See
// docs/metrics.md for the bytes per instance.
package timeseries

// Package kubelease is the leader election on a Kubernetes Lease
// (coordination.k8s.io/v1), with client-go's tools/leaderelection, that
// `serve --leader-election kubernetes` puts in front of the store lease
// (leader.Outer).
//
// client-go decides who holds the Lease; this package adds what the
// manager's fencing needs on top: Until, the end of this holder's term by
// its own monotonic clock (the start of its last successful renewal plus
// RenewDeadline, shorter than the LeaseDuration every other candidate waits
// without seeing a renewal before it takes over), so leader.Elector.Gate
// refuses actions even before client-go gives up and cancels the term; and
// on a graceful stop (ReleaseOnCancel) the Lease is released only once the
// term's work has returned, so the next leader never overlaps it.
package kubelease

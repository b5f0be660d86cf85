// Package platformtest is the platform contract: one set of cases every
// platform.Platform must pass (the local platform with real processes, the
// in-memory fake, Kubernetes later). A platform's own tests call Run with
// a Harness that knows how to make, restart and crash it.
package platformtest

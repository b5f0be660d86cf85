// Package platform is the seam between the control plane and where Redis
// runs, modelled on a task driver (Nomad's driver plugins, CloudNativePG's
// instance manager): the controller decides what should run; a platform
// gives instances endpoints (Reserve), makes them run (Ensure), re-attaches
// after a manager restart (Recover, with the opaque handle the store kept),
// stops them (Remove), tells what it has (List) and reports deaths, certain
// or suspected (Watch).
//
// Identity is (cluster, instance name), never an address. An Endpoint is a
// host (IPv4, IPv6 or a DNS name) and a port, formatted only by
// Endpoint.String (net.JoinHostPort). A platform runs the boot decision
// (internal/instance) right before each redis-server boot.
//
// Implementations: local (processes on this host), fake (in memory, for
// tests). The contract every implementation passes is platformtest.Run.
package platform

// Package local runs instances as redis-server processes on this host.
//
// Each instance has a directory <root>/<cluster>/<name> holding its config,
// data, pid file and logs. Processes start in their own session (Setsid) so
// they outlive the manager; a restarted manager re-adopts them by pid file,
// checking that the pid is alive and that its working directory is the
// instance's directory (Redis chdirs into its data dir), so a recycled pid is
// never mistaken for an instance and no second copy is ever started.
package local

// Package cli builds the redis-manager command tree: the global flags and the
// client commands (cluster, job) that drive a server through api.Client. The
// serve command lives with the server and is passed in by main, so this
// package never imports the server.
//
// Output follows one rule: reads print a table, or with -o json the API's
// JSON; long operations (create, delete) wait for their job and draw
// progress on stderr, so stdout stays parseable.
package cli

// Package server is the HTTP face of the manager: the REST API of
// shared/API.md, /metrics, and the `serve` command that assembles store,
// platform, controller and HTTP server.
package server

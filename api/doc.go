// Package api is the public contract of redis-manager: the JSON types of the
// REST API under /api/v1 and Client, the HTTP client the CLI itself uses.
// Scripts and tests can import it to drive a server the way the CLI does.
package api

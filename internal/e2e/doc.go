// Package e2e holds end-to-end tests: a real redis-manager binary drives
// real redis-server and Sentinel processes through the public API.
package e2e

// Package spec holds the pure parts of the desired state: validation and
// defaults of a cluster spec, the allow-list of user redis.conf directives,
// instance naming, and the rendering of redis.conf and sentinel.conf. Nothing
// here does I/O, so all of it is table-tested.
package spec

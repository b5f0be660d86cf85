// Package fake is an in-memory platform: an honest implementation of
// platform.Platform without processes, for fast tests of what drives a
// platform. It behaves like a platform that names instances by DNS
// (Kubernetes): every instance gets the host <name>.<cluster>.fake and
// port 6379 (Sentinels 26379). A boot runs the boot decision
// (instance.Decide) and renders the config exactly like a real platform;
// Kill and Suspect play the deaths a real platform would see.
package fake

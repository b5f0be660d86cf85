// Package platform is the seam between the control loop and where Redis
// runs. The control loop decides what should run; a platform only makes an
// instance run, stops it, and tells what it sees. Implementations:
// platform/local (processes on this host) and, later, Kubernetes.
package platform

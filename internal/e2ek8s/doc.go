// Package e2ek8s holds the end-to-end tests of the Kubernetes platform: a
// real redis-manager binary, started on this host with --platform
// kubernetes, drives a real one-node Kubernetes (hack/k8s-node/up) through
// the public API, and the tests check what runs there through the API
// server, the cluster DNS and the Services, as clients would.
//
// They need the node's three lines as environment variables
// (`make test-k8s` sets them):
//
//	REDIS_MANAGER_K8S_KUBECONFIG   KUBECONFIG= of hack/k8s-node/up
//	REDIS_MANAGER_K8S_IMAGE        IMAGE= (an image holding this code)
//	REDIS_MANAGER_K8S_DNS          DNS=
//	REDIS_MANAGER_K8S_STORAGE_CLASS  optional; "": the cluster's default class
//
// Without them the tests are skipped, and fail under CI=true. Each test
// runs in a namespace of its own, created and deleted by the test.
package e2ek8s

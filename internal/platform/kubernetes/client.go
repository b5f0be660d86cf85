package kubernetes

import "k8s.io/client-go/kubernetes"

// Clientset is the platform's client of the API server, for what runs next
// to the platform in the same namespace (the manager's leader Lease).
func (p *Platform) Clientset() kubernetes.Interface { return p.cs }

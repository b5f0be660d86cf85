package e2ek8s

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/redis-manager/redis-manager/api"
)

// TestLeastPrivilege runs the manager under exactly the ServiceAccount,
// Role and ClusterRole of deploy/kubernetes/rbac.yaml: create, scale
// replicas in past the master (a failover, role labels), change memory
// (pods resized in place), delete; nothing is refused.
func TestLeastPrivilege(t *testing.T) {
	var clusterRole string
	n := newNode(t, nodeOptions{Prepare: func(n *node) {
		clusterRole = applyRBAC(n)
	}})
	t.Cleanup(func() {
		ctx := context.Background()
		_ = n.cs.RbacV1().ClusterRoleBindings().Delete(ctx, clusterRole, metav1.DeleteOptions{})
		_ = n.cs.RbacV1().ClusterRoles().Delete(ctx, clusterRole, metav1.DeleteOptions{})
	})
	ctx := context.Background()
	n.CreateReady(api.CreateClusterRequest{Name: "p", Shards: intp(1), Replicas: intp(2), Sentinels: intp(3)})
	for _, req := range []api.UpdateClusterRequest{{Replicas: intp(1)}, {Maxmemory: strp("64mb")}} {
		res, err := n.M.Client.UpdateCluster(ctx, "p", req)
		if err != nil {
			t.Fatal(err)
		}
		if j := n.M.WaitJob(ctx, res.Job.ID); j.State != api.StateSucceeded {
			t.Fatalf("scale %+v: job %s: %s", req, j.State, j.Error)
		}
	}
	job, err := n.M.Client.DeleteCluster(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if j := n.M.WaitJob(ctx, job.ID); j.State != api.StateSucceeded {
		t.Fatalf("delete: job %s: %s", j.State, j.Error)
	}
	n.waitNothingLeft(time.Minute)
	log, _ := os.ReadFile(n.M.LogPath())
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "forbidden") {
			t.Errorf("refused under the Role: %s", line)
		}
	}
}

// applyRBAC creates deploy/kubernetes/rbac.yaml's objects in the test's
// namespace (the ClusterRole under a name of the test's own, bound to the
// ServiceAccount), writes a kubeconfig with a token of the ServiceAccount
// for the manager, and returns the ClusterRole's name.
func applyRBAC(n *node) string {
	t := n.t
	ctx := context.Background()
	f, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	clusterRole := "redis-manager-" + n.NS
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(f), 4096)
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(raw.Raw)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(raw.Raw, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = n.cs.CoreV1().ServiceAccounts(n.NS).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = n.cs.RbacV1().Roles(n.NS).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = n.cs.RbacV1().RoleBindings(n.NS).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.ClusterRole:
			o.Name = clusterRole
			if _, err = n.cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{}); err == nil {
				_, err = n.cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
					ObjectMeta: metav1.ObjectMeta{Name: clusterRole},
					RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: clusterRole},
					Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "redis-manager", Namespace: n.NS}},
				}, metav1.CreateOptions{})
			}
		default:
			t.Fatalf("rbac.yaml: unexpected %T", obj)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	hour := int64(3600)
	tok, err := n.cs.CoreV1().ServiceAccounts(n.NS).CreateToken(ctx, "redis-manager",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientcmd.BuildConfigFromFlags("", n.env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ca := admin.CAData
	if len(ca) == 0 && admin.CAFile != "" {
		if ca, err = os.ReadFile(admin.CAFile); err != nil {
			t.Fatal(err)
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["node"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos["redis-manager"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts["redis-manager"] = &clientcmdapi.Context{Cluster: "node", AuthInfo: "redis-manager", Namespace: n.NS}
	cfg.CurrentContext = "redis-manager"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	n.managerKubeconfig = path
	return clusterRole
}

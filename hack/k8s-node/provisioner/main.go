// Command hostpath-provisioner is the test node's dynamic volume provisioner
// (hack/k8s-node/up starts it as a host process): for every
// PersistentVolumeClaim that the PV controller hands to it (a claim of a
// StorageClass whose provisioner is redis-manager.io/hostpath) it makes a
// directory under -root and a hostPath PersistentVolume pre-bound to the
// claim; when such a volume is Released with reclaim policy Delete it removes
// the directory and the volume. Informers and a work queue, no polling.
// See docs/kubernetes.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster")
	root := flag.String("root", "/var/lib/redis-manager-k8s-node/volumes", "directory holding the volumes, one directory each")
	name := flag.String("name", DefaultName, "provisioner name: StorageClasses with this provisioner are ours")
	node := flag.String("node", "", "node the volumes live on (their node affinity) when the claim names none (Immediate binding)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*kubeconfig, *root, *name, *node, log); err != nil {
		log.Error("hostpath-provisioner", "err", err)
		os.Exit(1)
	}
}

func run(kubeconfig, root, name, node string, log *slog.Logger) error {
	if node == "" {
		return fmt.Errorf("-node is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.UserAgent = "redis-manager-hostpath-provisioner"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("volume root: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("hostpath-provisioner starting", "name", name, "root", root, "node", node)
	return New(client, name, root, node, log).Run(ctx, 2)
}

module github.com/redis-manager/redis-manager/hack/k8s-node/build/pause

go 1.26.0

// Command redis-manager is the Redis Manager server and CLI in one binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis-manager/redis-manager/internal/cli"
	"github.com/redis-manager/redis-manager/internal/instance"
	"github.com/redis-manager/redis-manager/internal/server"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := cli.NewRootCommand(version, server.NewServeCommand(version), instance.NewCommand(), instance.NewTaskCommand())
	// The root command prints "error: …" itself.
	if err := root.ExecuteContext(ctx); err != nil {
		stop()
		os.Exit(1)
	}
}

// Command shoal turns a pool of Docker engines into one Docker endpoint.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/shoal-dev/shoal/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

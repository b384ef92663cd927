// Command vigil is machine-learning API threat protection for Envoy: an
// ext_proc and ext_authz server that answers allow or 403 for every API call.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-project/vigil/server/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// After the first signal starts the graceful shutdown, a second one
		// gets the default behaviour: the process ends at once.
		<-ctx.Done()
		stop()
	}()
	err := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, cli.ErrUsage):
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "vigil:", err)
		os.Exit(1)
	}
}

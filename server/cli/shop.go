package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/vigil-project/vigil/server/demo"
)

// shopCmd runs the sample API alone (the docker-compose example's back end).
func shopCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("vigil shop", "", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	srv := &http.Server{Handler: demo.NewShop(demoSeed).Handler(), ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(stdout, "shop-bidding sample API listening on http://%s%s (users user1…user200, passwords password1…password200)\n", l.Addr(), demo.BasePath)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

package cluster

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
)

// newTestCluster opens a Cluster on addrs (several: a Redis Cluster) under
// the key prefix "t:", closed at cleanup.
func newTestCluster(t testing.TB, addrs ...string) *Cluster {
	t.Helper()
	c, err := Open(context.Background(), Options{Addrs: addrs, Cluster: len(addrs) > 1, KeyPrefix: "t:", Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if c.Client() == nil {
		t.Fatalf("no client to %v", addrs)
	}
	t.Cleanup(c.Close)
	return c
}

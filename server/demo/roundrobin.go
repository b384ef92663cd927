package demo

import (
	"context"
	"sync/atomic"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

// RoundRobin spreads the ext_proc streams (one per HTTP request) over
// several Vigil replicas in turn, as Envoy's round-robin load balancing
// does over a cluster's endpoints: each replica sees every N-th call of
// every client, so an attack is spread thin over all of them.
func RoundRobin(replicas ...extprocv3.ExternalProcessorClient) extprocv3.ExternalProcessorClient {
	if len(replicas) == 1 {
		return replicas[0]
	}
	return &roundRobin{replicas: replicas}
}

type roundRobin struct {
	replicas []extprocv3.ExternalProcessorClient
	next     atomic.Uint64
}

func (r *roundRobin) Process(ctx context.Context, opts ...grpc.CallOption) (extprocv3.ExternalProcessor_ProcessClient, error) {
	i := (r.next.Add(1) - 1) % uint64(len(r.replicas))
	return r.replicas[i].Process(ctx, opts...)
}

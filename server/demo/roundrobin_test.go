package demo

import (
	"context"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
)

type countingClient struct{ n int }

func (c *countingClient) Process(context.Context, ...grpc.CallOption) (extprocv3.ExternalProcessor_ProcessClient, error) {
	c.n++
	return nil, nil
}

func TestRoundRobinSpreadsStreamsEvenly(t *testing.T) {
	a, b, c := &countingClient{}, &countingClient{}, &countingClient{}
	rr := RoundRobin(a, b, c)
	for range 300 {
		rr.Process(context.Background())
	}
	if a.n != 100 || b.n != 100 || c.n != 100 {
		t.Fatalf("streams per replica %d %d %d, want 100 each", a.n, b.n, c.n)
	}
	if one := RoundRobin(a); one != a {
		t.Fatal("one replica: want the client itself")
	}
}

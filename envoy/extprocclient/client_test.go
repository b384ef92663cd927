package extprocclient

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// The protocol itself is pinned by test/envoysim's scenarios (hand-written
// expectations of Envoy against in-test servers) and by the demo's front
// door tests; this file pins what only this package adds.

type recordingServer struct {
	extprocv3.UnimplementedExternalProcessorServer
	got chan *extprocv3.ProcessingRequest
}

func (s *recordingServer) Process(st extprocv3.ExternalProcessor_ProcessServer) error {
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		s.got <- m
		r := &extprocv3.ProcessingResponse{}
		switch m.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			r.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			r.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}
		}
		if err := st.Send(r); err != nil {
			return err
		}
	}
}

func TestTypedAttributesGoBesideTheStringOnes(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	rec := &recordingServer{got: make(chan *extprocv3.ProcessingRequest, 8)}
	extprocv3.RegisterExternalProcessorServer(srv, rec)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cfg := Config{
		RequestAttributes:      map[string]string{"source.address": "192.0.2.1:4321", "source.port": "overridden"},
		RequestAttributeValues: map[string]*structpb.Value{"source.port": structpb.NewNumberValue(4321)},
	}
	res, err := Do(ctx, extprocv3.NewExternalProcessorClient(cc), cfg, HTTPRequest{Path: "/x", Authority: "a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || !res.UpstreamCalled {
		t.Fatalf("status %d, upstream called %v", res.Status, res.UpstreamCalled)
	}
	first := <-rec.got
	attrs := first.GetAttributes()[FilterName].GetFields()
	if attrs["source.address"].GetStringValue() != "192.0.2.1:4321" {
		t.Errorf("source.address %v", attrs["source.address"])
	}
	if _, isNumber := attrs["source.port"].GetKind().(*structpb.Value_NumberValue); !isNumber || attrs["source.port"].GetNumberValue() != 4321 {
		t.Errorf("source.port %v, want the number 4321 (Envoy sends integer attributes as numbers)", attrs["source.port"])
	}
	second := <-rec.got
	if second.GetResponseHeaders() == nil || second.GetAttributes() != nil {
		t.Errorf("second message %v: want response_headers without request attributes", second)
	}
}

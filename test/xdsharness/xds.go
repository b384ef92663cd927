package xdsharness

import (
	"fmt"
	"net"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	insecurecredsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/grpc_service/channel_credentials/insecure/v3"
	cachetypes "github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// ExtProcConfig returns the ext_proc filter config the harness serves for
// opts (after defaults are applied by New). Exposed for inspection in tests.
func ExtProcConfig(opts Options) (*extprocfilterv3.ExternalProcessor, error) {
	insecureAny, err := anypb.New(&insecurecredsv3.InsecureCredentials{})
	if err != nil {
		return nil, err
	}
	gs := &corev3.GrpcService{
		TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{
			TargetUri:                opts.ExtProcAddr,
			ChannelCredentialsPlugin: []*anypb.Any{insecureAny},
			StatPrefix:               "ext_proc",
		}},
	}
	if opts.ExtProcTimeout > 0 {
		gs.Timeout = durationpb.New(opts.ExtProcTimeout)
	}
	pm := DefaultProcessingMode()
	if opts.ProcessingMode != nil {
		pm = *opts.ProcessingMode
	}
	cfg := &extprocfilterv3.ExternalProcessor{
		GrpcService:              gs,
		ProcessingMode:           pm.proto(),
		FailureModeAllow:         opts.FailureModeAllow,
		ObservabilityMode:        opts.ObservabilityMode,
		DisableImmediateResponse: opts.DisableImmediateResponse,
		RequestAttributes:        opts.RequestAttributes,
		ResponseAttributes:       opts.ResponseAttributes,
	}
	if opts.DeferredCloseTimeout > 0 {
		cfg.DeferredCloseTimeout = durationpb.New(opts.DeferredCloseTimeout)
	}
	if opts.ConfigHook != nil {
		opts.ConfigHook(cfg)
	}
	return cfg, nil
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func mustAny(m proto.Message) (*anypb.Any, error) {
	a, err := anypb.New(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", m, err)
	}
	return a, nil
}

// buildResources builds the LDS/RDS/CDS/EDS resources for one harness.
func buildResources(opts Options, backendAddr string) (map[resourcev3.Type][]cachetypes.Resource, error) {
	name := opts.ListenerName
	routeName := name + "-route"
	clusterName := name + "-cluster"

	epCfg, err := ExtProcConfig(opts)
	if err != nil {
		return nil, err
	}
	epAny, err := mustAny(epCfg)
	if err != nil {
		return nil, err
	}
	routerAny, err := mustAny(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "vigil-xdsharness",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeName,
			ConfigSource:    adsSource(),
		}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "envoy.filters.http.ext_proc", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: epAny}},
			{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: routerAny}},
		},
	}
	hcmAny, err := mustAny(hcm)
	if err != nil {
		return nil, err
	}
	lis := &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: hcmAny},
	}

	rc := &routev3.RouteConfiguration{
		Name: routeName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name + "-vhost",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName},
				}},
			}},
		}},
	}

	cl := &clusterv3.Cluster{
		Name:                 clusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   adsSource(),
			ServiceName: clusterName,
		},
		LbPolicy: clusterv3.Cluster_ROUND_ROBIN,
	}

	host, portStr, err := net.SplitHostPort(backendAddr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 32)
	if err != nil {
		return nil, err
	}
	cla := &endpointv3.ClusterLoadAssignment{
		ClusterName: clusterName,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			// grpc-go drops localities without a weight: "weighted-target:
			// no targets to pick from".
			Locality:            &corev3.Locality{Region: "local", Zone: "local-a", SubZone: "0"},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
						Protocol:      corev3.SocketAddress_TCP,
						Address:       host,
						PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
					}}},
				}},
				HealthStatus: corev3.HealthStatus_HEALTHY,
			}},
		}},
	}

	return map[resourcev3.Type][]cachetypes.Resource{
		resourcev3.ListenerType: {lis},
		resourcev3.RouteType:    {rc},
		resourcev3.ClusterType:  {cl},
		resourcev3.EndpointType: {cla},
	}, nil
}

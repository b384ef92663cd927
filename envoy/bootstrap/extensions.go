package bootstrap

// The extension types a bootstrap may pack in an Any (typed_config and friends). protojson
// resolves an "@type" only if the Go package of that message is linked in, so this list is
// the validator's vocabulary: a type missing here fails loudly ("unable to resolve"), which
// is what we want for a typo. When an example starts using another extension, add its
// package here.
import (
	// HTTP connection manager and the HTTP filters Vigil's examples use; upstream_codec
	// ends a cluster's upstream HTTP filter chain.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/upstream_codec/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	// Upstream protocol options (HTTP/2 to the gRPC cluster) and TLS transport sockets.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	// Access loggers: stdout/stderr, file, gRPC access log service.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"

	// google_grpc channel credentials (channel_credentials_plugin).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/grpc_service/channel_credentials/insecure/v3"
)

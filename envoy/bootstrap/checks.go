package bootstrap

import (
	"fmt"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// routerFilterName is the name Envoy gives the router filter; it identifies the router
// when an HttpFilter has no typed_config.
const routerFilterName = "envoy.filters.http.router"

// check runs the semantic checks that Envoy's C++ config factories make and PGV cannot.
// It needs the walker's findings, so it runs after walk.
func (w *walker) check(bs *bootstrapv3.Bootstrap) []error {
	var problems []error
	sr := bs.GetStaticResources()

	for i, l := range sr.GetListeners() {
		if j := firstIndex(sr.GetListeners(), i, l.GetName()); j >= 0 {
			problems = append(problems, fmt.Errorf("%s: duplicate listener name %q (first at static_resources.listeners[%d])",
				indexPath("static_resources.listeners", i, l.GetName()), l.GetName(), j))
		}
	}

	clusters := map[string]int{}
	for i, c := range sr.GetClusters() {
		if j, dup := clusters[c.GetName()]; dup {
			problems = append(problems, fmt.Errorf("%s: duplicate cluster name %q (first at static_resources.clusters[%d])",
				indexPath("static_resources.clusters", i, c.GetName()), c.GetName(), j))
			continue
		}
		clusters[c.GetName()] = i
	}
	problems = append(problems, w.checkClusterRefs(bs, clusters)...)

	for _, h := range w.hcms {
		problems = append(problems, w.checkHCM(h.msg, h.path)...)
	}
	for _, e := range w.extProcs {
		problems = append(problems, checkExtProc(e.msg, e.path)...)
	}
	return problems
}

// firstIndex returns the index of the first listener before i named name, or -1.
func firstIndex[T interface{ GetName() string }](items []T, i int, name string) int {
	for j := 0; j < i; j++ {
		if items[j].GetName() == name {
			return j
		}
	}
	return -1
}

// checkClusterRefs checks that every named cluster exists and that clusters used by
// envoy_grpc speak HTTP/2. When clusters may also come from CDS, a cluster missing from
// static_resources is not an error.
func (w *walker) checkClusterRefs(bs *bootstrapv3.Bootstrap, clusters map[string]int) []error {
	var problems []error
	cds := bs.GetDynamicResources().GetCdsConfig() != nil || bs.GetDynamicResources().GetCdsResourcesLocator() != ""
	reportedH2 := map[string]bool{}
	for _, ref := range w.refs {
		i, ok := clusters[ref.cluster]
		if !ok {
			if !cds {
				problems = append(problems, fmt.Errorf("%s: cluster %q is not defined in static_resources.clusters", ref.path, ref.cluster))
			}
			continue
		}
		c := bs.GetStaticResources().GetClusters()[i]
		if ref.grpc && !reportedH2[ref.cluster] && !http2Enabled(c) {
			reportedH2[ref.cluster] = true
			problems = append(problems, fmt.Errorf("%s: cluster is used for gRPC (by %s) but does not enable HTTP/2: set "+
				"typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions].explicit_http_config.http2_protocol_options",
				indexPath("static_resources.clusters", i, c.GetName()), ref.path))
		}
	}
	return problems
}

// http2Enabled reports whether Envoy speaks HTTP/2 (prior knowledge) to the cluster: the
// deprecated Cluster.http2_protocol_options, or an upstreams.http.v3.HttpProtocolOptions
// with explicit_http_config.http2_protocol_options. auto_config is not enough: it needs
// TLS with ALPN, and falls back to HTTP/1.1 on plain text.
func http2Enabled(c *clusterv3.Cluster) bool {
	if c.GetHttp2ProtocolOptions() != nil {
		return true
	}
	for _, a := range c.GetTypedExtensionProtocolOptions() {
		var opts upstreamhttpv3.HttpProtocolOptions
		if !isType(a, &opts) {
			continue
		}
		if err := a.UnmarshalTo(&opts); err == nil && opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
			return true
		}
	}
	return false
}

// isType reports whether a holds a message of m's type.
func isType(a *anypb.Any, m proto.Message) bool {
	return a != nil && a.MessageIs(m)
}

// isRouter reports whether f is the router filter.
func isRouter(f *hcmv3.HttpFilter) bool {
	if tc := f.GetTypedConfig(); tc != nil {
		return isType(tc, &routerv3.Router{})
	}
	return f.GetConfigDiscovery() == nil && f.GetName() == routerFilterName
}

// checkHCM checks one HTTP connection manager: filter names, router placement, and the
// typed_per_filter_config keys of its inline route configuration.
func (w *walker) checkHCM(h *hcmv3.HttpConnectionManager, path string) []error {
	var problems []error
	filters := h.GetHttpFilters()
	filtersPath := joinPath(path, "http_filters")

	known := map[string]bool{}
	for name := range w.upstreamFilters {
		known[name] = true
	}
	var routers []int
	for i, f := range filters {
		if j := firstIndex(filters, i, f.GetName()); j >= 0 {
			problems = append(problems, fmt.Errorf("%s: duplicate http filter name %q (first at http_filters[%d])",
				indexPath(filtersPath, i, f.GetName()), f.GetName(), j))
		}
		known[f.GetName()] = true
		if isRouter(f) {
			routers = append(routers, i)
			var r routerv3.Router
			if f.GetTypedConfig().UnmarshalTo(&r) == nil {
				for _, uf := range r.GetUpstreamHttpFilters() {
					known[uf.GetName()] = true
				}
			}
		}
	}
	switch {
	case len(routers) == 0:
		problems = append(problems, fmt.Errorf("%s: no router filter (envoy.extensions.filters.http.router.v3.Router); it must be the last http filter", filtersPath))
	case len(routers) > 1:
		for _, i := range routers[1:] {
			problems = append(problems, fmt.Errorf("%s: the router filter must appear once (first at http_filters[%d])",
				indexPath(filtersPath, i, filters[i].GetName()), routers[0]))
		}
	}
	if len(routers) > 0 && routers[len(routers)-1] != len(filters)-1 {
		last := len(filters) - 1
		problems = append(problems, fmt.Errorf("%s: the router filter must be the last http filter, but %q follows it",
			indexPath(filtersPath, routers[len(routers)-1], filters[routers[len(routers)-1]].GetName()), filters[last].GetName()))
	}

	if rc := h.GetRouteConfig(); rc != nil {
		problems = append(problems, checkPerFilterKeys(rc, joinPath(path, "route_config"), known)...)
	}
	return problems
}

// checkPerFilterKeys checks that every typed_per_filter_config key in a route
// configuration names a filter of the connection manager. Envoy matches the key against
// the filter's name exactly (no fallback to the extension name since 1.29), so a
// mismatched key silently leaves the filter enabled on that route.
func checkPerFilterKeys(rc *routev3.RouteConfiguration, path string, known map[string]bool) []error {
	var problems []error
	checkMap := func(m map[string]*anypb.Any, at string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !known[k] {
				problems = append(problems, fmt.Errorf("%s[%s]: no http filter named %q in this connection manager (have %s)",
					joinPath(at, "typed_per_filter_config"), k, k, knownList(known)))
			}
		}
	}
	checkMap(rc.GetTypedPerFilterConfig(), path)
	for i, vh := range rc.GetVirtualHosts() {
		vhPath := indexPath(joinPath(path, "virtual_hosts"), i, vh.GetName())
		checkMap(vh.GetTypedPerFilterConfig(), vhPath)
		for j, r := range vh.GetRoutes() {
			rPath := indexPath(joinPath(vhPath, "routes"), j, r.GetName())
			checkMap(r.GetTypedPerFilterConfig(), rPath)
			for k, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				checkMap(wc.GetTypedPerFilterConfig(),
					indexPath(joinPath(rPath, "route.weighted_clusters.clusters"), k, wc.GetName()))
			}
		}
	}
	return problems
}

func knownList(known map[string]bool) string {
	names := make([]string, 0, len(known))
	for n := range known {
		names = append(names, fmt.Sprintf("%q", n))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// checkExtProc applies the rules Envoy's ext_proc filter factory enforces at load time.
func checkExtProc(e *extprocv3.ExternalProcessor, path string) []error {
	var problems []error
	add := func(field, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: "+format, append([]any{joinPath(path, field)}, args...)...))
	}
	grpc, http := e.GetGrpcService() != nil, e.GetHttpService() != nil
	switch {
	case grpc && http:
		add("grpc_service", "set exactly one of grpc_service and http_service, not both")
	case !grpc && !http:
		add("grpc_service", "set exactly one of grpc_service and http_service")
	}

	pm := e.GetProcessingMode() // nil: headers SEND, bodies NONE, trailers SKIP
	const full = extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
	const send = extprocv3.ProcessingMode_SEND
	if pm.GetRequestBodyMode() == full && pm.GetRequestTrailerMode() != send {
		add("processing_mode.request_trailer_mode", "request_body_mode FULL_DUPLEX_STREAMED needs request_trailer_mode SEND, got %s",
			pm.GetRequestTrailerMode())
	}
	if pm.GetResponseBodyMode() == full && pm.GetResponseTrailerMode() != send {
		add("processing_mode.response_trailer_mode", "response_body_mode FULL_DUPLEX_STREAMED needs response_trailer_mode SEND, got %s",
			pm.GetResponseTrailerMode())
	}

	if e.GetObservabilityMode() {
		for _, b := range []struct {
			field string
			mode  extprocv3.ProcessingMode_BodySendMode
		}{
			{"processing_mode.request_body_mode", pm.GetRequestBodyMode()},
			{"processing_mode.response_body_mode", pm.GetResponseBodyMode()},
		} {
			switch b.mode {
			case extprocv3.ProcessingMode_NONE, extprocv3.ProcessingMode_STREAMED, extprocv3.ProcessingMode_GRPC:
			default:
				add(b.field, "observability_mode sends bodies only in NONE, STREAMED or GRPC mode, got %s (the body would never be sent)", b.mode)
			}
		}
	}

	if http {
		if pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE || pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE ||
			pm.GetRequestTrailerMode() == send || pm.GetResponseTrailerMode() == send {
			add("http_service", "http_service supports headers only: body modes must be NONE and trailer modes not SEND")
		}
	}

	if e.GetDisableClearRouteCache() && e.GetRouteCacheAction() != extprocv3.ExternalProcessor_DEFAULT {
		add("route_cache_action", "set either disable_clear_route_cache or route_cache_action, not both")
	}
	return problems
}

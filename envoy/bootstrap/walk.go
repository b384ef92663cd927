package bootstrap

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// clusterRef is a place in the bootstrap that names a cluster.
type clusterRef struct {
	cluster string
	path    string
	grpc    bool // named by envoy_grpc: the cluster must speak HTTP/2
}

// located is a message found during the walk, with its field path.
type located[T any] struct {
	msg  T
	path string
}

// walker visits every message of a bootstrap, including those packed in Any, runs the PGV
// rules of each tree root (the bootstrap and every Any payload) and collects what the
// semantic checks need.
type walker struct {
	problems        []error
	refs            []clusterRef
	hcms            []located[*hcmv3.HttpConnectionManager]
	extProcs        []located[*extprocv3.ExternalProcessor]
	upstreamFilters map[string]bool // http filter names configured on clusters (upstream filters)
}

func newWalker() *walker {
	return &walker{upstreamFilters: map[string]bool{}}
}

// walk visits m, found at path. root is true for the bootstrap and for every message
// unpacked from an Any: PGV's ValidateAll already recurses into ordinary sub-messages, so
// calling it on roots only reports each rule violation once.
func (w *walker) walk(m protoreflect.Message, path string, root bool) {
	if root {
		if v, ok := m.Interface().(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				w.problems = append(w.problems, flattenPGV(err, m, path)...)
			}
		}
	}
	w.collect(m.Interface(), path)

	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			w.problems = append(w.problems, fmt.Errorf("%s: unpack %q: %w", orRoot(path), a.GetTypeUrl(), err))
			return
		}
		w.walk(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().Name())+">", true)
		return
	}

	// Fields in declaration order and map keys sorted, so problems come out in a stable order.
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		v := m.Get(fd)
		switch {
		case fd.IsList():
			if fd.Message() == nil {
				continue
			}
			l := v.List()
			for j := 0; j < l.Len(); j++ {
				w.walk(l.Get(j).Message(), listPath(path, fd, j, l.Get(j).Message()), false)
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				continue
			}
			mp := v.Map()
			for _, k := range sortedKeys(mp) {
				w.walk(mp.Get(k).Message(), mapPath(path, fd, k.String()), false)
			}
		case fd.Message() != nil:
			w.walk(v.Message(), fieldPath(path, fd), false)
		}
	}
}

// collect records what the semantic checks need from one message.
func (w *walker) collect(m protoreflect.ProtoMessage, path string) {
	switch m := m.(type) {
	case *corev3.GrpcService_EnvoyGrpc:
		w.refs = append(w.refs, clusterRef{cluster: m.GetClusterName(), path: joinPath(path, "cluster_name"), grpc: true})
	case *corev3.HttpUri:
		if c := m.GetCluster(); c != "" {
			w.refs = append(w.refs, clusterRef{cluster: c, path: joinPath(path, "cluster")})
		}
	case *routev3.RouteAction:
		if c := m.GetCluster(); c != "" {
			w.refs = append(w.refs, clusterRef{cluster: c, path: joinPath(path, "cluster")})
		}
	case *routev3.RouteAction_RequestMirrorPolicy:
		if c := m.GetCluster(); c != "" {
			w.refs = append(w.refs, clusterRef{cluster: c, path: joinPath(path, "cluster")})
		}
	case *routev3.WeightedCluster_ClusterWeight:
		if c := m.GetName(); c != "" {
			w.refs = append(w.refs, clusterRef{cluster: c, path: joinPath(path, "name")})
		}
	case *hcmv3.HttpConnectionManager:
		w.hcms = append(w.hcms, located[*hcmv3.HttpConnectionManager]{m, path})
	case *extprocv3.ExternalProcessor:
		w.extProcs = append(w.extProcs, located[*extprocv3.ExternalProcessor]{m, path})
	case *upstreamhttpv3.HttpProtocolOptions:
		for _, f := range m.GetHttpFilters() {
			w.upstreamFilters[f.GetName()] = true
		}
	}
}

func sortedKeys(mp protoreflect.Map) []protoreflect.MapKey {
	var keys []protoreflect.MapKey
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
	return keys
}

// Paths look like static_resources.listeners[0:ingress].filter_chains[0].filters[0:name]
// .typed_config<HttpConnectionManager>.route_config.virtual_hosts[0:app]
// .typed_per_filter_config[envoy.filters.http.ext_proc]<ExtProcPerRoute>.disabled:
// list elements carry their name when they have one, Any payloads their message name.

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func fieldPath(path string, fd protoreflect.FieldDescriptor) string {
	return joinPath(path, string(fd.Name()))
}

func listPath(path string, fd protoreflect.FieldDescriptor, i int, elem protoreflect.Message) string {
	return indexPath(fieldPath(path, fd), i, nameOf(elem))
}

func indexPath(path string, i int, name string) string {
	if name != "" {
		return fmt.Sprintf("%s[%d:%s]", path, i, name)
	}
	return fmt.Sprintf("%s[%d]", path, i)
}

func mapPath(path string, fd protoreflect.FieldDescriptor, key string) string {
	return fmt.Sprintf("%s[%s]", fieldPath(path, fd), key)
}

func orRoot(path string) string {
	if path == "" {
		return "(bootstrap)"
	}
	return path
}

// nameOf returns the value of a message's string field "name", or "".
func nameOf(m protoreflect.Message) string {
	if m == nil || !m.IsValid() {
		return ""
	}
	fd := m.Descriptor().Fields().ByName("name")
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return ""
	}
	return m.Get(fd).String()
}

// pgvError is the shape of every protoc-gen-validate <Msg>ValidationError.
type pgvError interface {
	Field() string
	Reason() string
	Cause() error
	Key() bool
}

// pgvField splits a PGV field such as "Listeners[0]" or "TypedPerFilterConfig[key]".
var pgvField = regexp.MustCompile(`^([A-Za-z0-9_]+)(?:\[(.*)\])?$`)

// flattenPGV turns a PGV error tree ("invalid Bootstrap.StaticResources: embedded message
// failed validation | caused by: ...") into one error per violated rule, each with the
// proto field path (static_resources.listeners[0:ingress].name) found by following the
// PGV field names through m.
func flattenPGV(err error, m protoreflect.Message, path string) []error {
	if multi, ok := err.(interface{ AllErrors() []error }); ok {
		var out []error
		for _, e := range multi.AllErrors() {
			out = append(out, flattenPGV(e, m, path)...)
		}
		return out
	}
	var ve pgvError
	if !errors.As(err, &ve) {
		return []error{fmt.Errorf("%s: %w", orRoot(path), err)}
	}
	childPath, child := pgvStep(m, ve.Field(), path)
	if ve.Key() {
		childPath += " (key)"
	}
	if cause := ve.Cause(); cause != nil {
		var inner pgvError
		_, isMulti := cause.(interface{ AllErrors() []error })
		if child != nil && (isMulti || errors.As(cause, &inner)) {
			return flattenPGV(cause, child, childPath)
		}
		return []error{fmt.Errorf("%s: %s: %w", childPath, ve.Reason(), cause)}
	}
	return []error{fmt.Errorf("%s: %s", childPath, ve.Reason())}
}

// pgvStep follows one PGV field name (Go spelling, with an optional [index] or [key]) from
// m, returning the proto path of that field and the sub-message there, if any.
func pgvStep(m protoreflect.Message, field, path string) (string, protoreflect.Message) {
	parts := pgvField.FindStringSubmatch(field)
	if parts == nil {
		return joinPath(path, field), nil
	}
	goName, sub := parts[1], parts[2]
	var fd protoreflect.FieldDescriptor
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if strings.EqualFold(strings.ReplaceAll(string(f.Name()), "_", ""), goName) {
			fd = f
			break
		}
	}
	if fd == nil { // e.g. a required oneof, reported under its Go group name
		return joinPath(path, field), nil
	}
	switch {
	case fd.IsList() && sub != "":
		i, err := strconv.Atoi(sub)
		l := m.Get(fd).List()
		if err != nil || i < 0 || i >= l.Len() {
			return fmt.Sprintf("%s[%s]", fieldPath(path, fd), sub), nil
		}
		if fd.Message() == nil {
			return indexPath(fieldPath(path, fd), i, ""), nil
		}
		elem := l.Get(i).Message()
		return listPath(path, fd, i, elem), elem
	case fd.IsMap() && sub != "":
		p := mapPath(path, fd, sub)
		if fd.MapValue().Message() == nil {
			return p, nil
		}
		var found protoreflect.Message
		m.Get(fd).Map().Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			if k.String() == sub {
				found = v.Message()
				return false
			}
			return true
		})
		return p, found
	case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
		return fieldPath(path, fd), m.Get(fd).Message()
	default:
		return fieldPath(path, fd), nil
	}
}

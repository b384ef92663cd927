// Package manifests checks the Kubernetes and Istio examples under examples/
// against their API types, so a manifest cannot drift into one the API server
// (or istiod) would reject or silently half-ignore.
package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	meshapi "istio.io/api/mesh/v1alpha1"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1alpha3 "istio.io/client-go/pkg/apis/networking/v1alpha3"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	k8snetworkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/vigil-project/vigil/server/config"
)

const (
	examplesDir = "../../examples"
	// vigilCluster is the cluster Istio generates for port 9000 of the vigil Service.
	vigilCluster = "outbound|9000||vigil.vigil-system.svc.cluster.local"
)

// manifestDirs are the directories whose every YAML document is a Kubernetes object.
var manifestDirs = []string{"kubernetes", "istio"}

// doc is one decoded YAML document.
type doc struct {
	where string // file:index
	obj   any
	raw   []byte // JSON
}

// newObject returns an empty typed object for apiVersion/kind, or nil.
func newObject(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}
	case "v1/Service":
		return &corev1.Service{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "v1/Namespace":
		return &corev1.Namespace{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.istio.io/v1alpha3/EnvoyFilter":
		return &networkingv1alpha3.EnvoyFilter{}
	case "security.istio.io/v1/AuthorizationPolicy":
		return &securityv1.AuthorizationPolicy{}
	case "security.istio.io/v1/PeerAuthentication":
		return &securityv1.PeerAuthentication{}
	case "networking.istio.io/v1/DestinationRule":
		return &networkingv1.DestinationRule{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &k8snetworkingv1.NetworkPolicy{}
	}
	return nil
}

// decodeStrict decodes JSON into v, refusing unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// specStrict re-decodes an Istio object's spec with protojson, which (unlike the
// client-go types' jsonpb with AllowUnknownFields) rejects unknown fields and enums.
func specStrict(raw []byte, into proto.Message) error {
	var top struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		return err
	}
	if len(top.Spec) == 0 {
		return errors.New("no spec")
	}
	return protojson.Unmarshal(top.Spec, into)
}

// loadDir decodes every YAML document under examples/<dir>.
func loadDir(t *testing.T, dir string) []doc {
	t.Helper()
	var docs []doc
	root := filepath.Join(examplesDir, dir)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := strings.ToLower(filepath.Ext(path)); d.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(examplesDir, path)
		r := utilyaml.NewYAMLReader(bufio.NewReader(f))
		for i := 0; ; i++ {
			chunk, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				break
			}
			where := filepath.ToSlash(rel) + "#" + strconv.Itoa(i)
			js, err := yaml.YAMLToJSON(chunk)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
				continue // comments only
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(js, &tm); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			obj := newObject(tm.APIVersion, tm.Kind)
			if obj == nil {
				t.Errorf("%s: unknown kind %s %s", where, tm.APIVersion, tm.Kind)
				continue
			}
			if err := decodeStrict(js, obj); err != nil {
				t.Errorf("%s: %s %s: %v", where, tm.APIVersion, tm.Kind, err)
				continue
			}
			switch tm.Kind {
			case "EnvoyFilter":
				err = specStrict(js, &networkingapi.EnvoyFilter{})
			case "AuthorizationPolicy":
				err = specStrict(js, &securityapi.AuthorizationPolicy{})
			case "PeerAuthentication":
				err = specStrict(js, &securityapi.PeerAuthentication{})
			case "DestinationRule":
				err = specStrict(js, &networkingapi.DestinationRule{})
			}
			if err != nil {
				t.Errorf("%s: %s spec: %v", where, tm.Kind, err)
				continue
			}
			docs = append(docs, doc{where: where, obj: obj, raw: js})
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	if len(docs) == 0 {
		t.Fatalf("no manifests under %s", root)
	}
	return docs
}

func TestManifests(t *testing.T) {
	for _, dir := range manifestDirs {
		t.Run(dir, func(t *testing.T) {
			docs := loadDir(t, dir)
			cfg, dep := checkVigil(t, docs)
			checkRedis(t, docs, cfg, dep)
			if dir == "istio" {
				checkIstio(t, docs)
			}
		})
	}
}

func TestUnknownKindFails(t *testing.T) {
	if newObject("apps/v1", "DaemonSet") != nil || newObject("v1", "Deploymentt") != nil {
		t.Fatal("unlisted kinds must not decode")
	}
	var d appsv1.Deployment
	if err := decodeStrict([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replica":2}}`), &d); err == nil {
		t.Fatal("unknown field accepted")
	}
}

// TestMountedSecretKey checks the check that ties *_file paths to Secret keys.
func TestMountedSecretKey(t *testing.T) {
	mode := func(m int32) *int32 { return &m }
	fsGroup := int64(65532)
	pod := func(defaultMode *int32, readOnly bool, items ...corev1.KeyToPath) *corev1.PodSpec {
		return &corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{FSGroup: &fsGroup},
			Containers: []corev1.Container{{VolumeMounts: []corev1.VolumeMount{
				{Name: "config", MountPath: "/etc/vigil", ReadOnly: true},
				{Name: "secrets", MountPath: "/etc/vigil/secrets", ReadOnly: readOnly},
			}}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}},
				{Name: "secrets", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: defaultMode, Items: items}}},
			},
		}
	}
	for _, tc := range []struct {
		name    string
		pod     *corev1.PodSpec
		path    string
		wantKey string // empty: an error
	}{
		{"whole secret", pod(mode(0o440), true), "/etc/vigil/secrets/admin-token", "admin-token"},
		{"item", pod(mode(0o440), true, corev1.KeyToPath{Key: "k", Path: "admin-token"}), "/etc/vigil/secrets/admin-token", "k"},
		{"item mode", pod(mode(0o440), true, corev1.KeyToPath{Key: "k", Path: "t", Mode: mode(0o444)}), "/etc/vigil/secrets/t", ""},
		{"no such item", pod(mode(0o440), true, corev1.KeyToPath{Key: "k", Path: "other"}), "/etc/vigil/secrets/admin-token", ""},
		{"default mode 0644", pod(nil, true), "/etc/vigil/secrets/admin-token", ""},
		{"writable mount", pod(mode(0o440), false), "/etc/vigil/secrets/admin-token", ""},
		{"in the ConfigMap", pod(mode(0o440), true), "/etc/vigil/admin-token", ""},
		{"not mounted", pod(mode(0o440), true), "/run/secrets/admin-token", ""},
	} {
		c := &tc.pod.Containers[0]
		_, key, err := mountedSecretKey(tc.pod, c, tc.path)
		if key != tc.wantKey || (err == nil) != (tc.wantKey != "") {
			t.Errorf("%s: got key %q, err %v; want key %q", tc.name, key, err, tc.wantKey)
		}
	}
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n)
}

// checkVigil checks Vigil's config, Deployment, Service and PDB agree. It
// returns the config, validated, and the Deployment.
func checkVigil(t *testing.T, docs []doc) (*config.Config, *appsv1.Deployment) {
	var deps []*appsv1.Deployment
	var svcs []*corev1.Service
	var pdbs []*policyv1.PodDisruptionBudget
	var cfgMaps []configMapDoc
	var netpols []*k8snetworkingv1.NetworkPolicy
	secrets := map[string]*corev1.Secret{}
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *k8snetworkingv1.NetworkPolicy:
			netpols = append(netpols, o)
		case *appsv1.Deployment:
			deps = append(deps, o)
		case *corev1.Service:
			if o.Spec.Selector["app"] != "redis" { // Redis' own, checkRedis
				svcs = append(svcs, o)
			}
		case *policyv1.PodDisruptionBudget:
			pdbs = append(pdbs, o)
		case *corev1.Secret:
			if _, ok := secretData(o)["vigil.yaml"]; ok {
				t.Errorf("%s: Secret %s holds vigil.yaml: the config belongs in a ConfigMap, its secrets in files its *_file keys name", d.where, o.Name)
			}
			secrets[o.Name] = o
		case *corev1.ConfigMap:
			if text, ok := o.Data["vigil.yaml"]; ok {
				cfgMaps = append(cfgMaps, configMapDoc{where: d.where, cm: o, text: text})
			}
		}
	}
	if len(deps) != 1 || len(svcs) != 1 || len(cfgMaps) != 1 || len(pdbs) != 1 {
		t.Fatalf("want one Vigil Deployment, Service, ConfigMap with vigil.yaml and PDB; got %d, %d, %d, %d", len(deps), len(svcs), len(cfgMaps), len(pdbs))
	}
	dep, svc, pdb := deps[0], svcs[0], pdbs[0]
	cfg := checkVigilConfig(t, cfgMaps[0], dep, secrets)
	if svc.Name != "vigil" || svc.Namespace != "vigil-system" || dep.Namespace != "vigil-system" {
		t.Errorf("want Service vigil and Deployment in vigil-system, got %s/%s and %s", svc.Namespace, svc.Name, dep.Namespace)
	}
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(dep.Spec.Template.Spec.Containers))
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if got := strings.Join(c.Args, " "); got != "serve --config /etc/vigil/vigil.yaml" {
		t.Errorf("args %q", got)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	grpcPort, adminPort := portOf(t, cfg.GRPCAddr), portOf(t, cfg.AdminAddr)
	if ports["grpc"] != grpcPort || ports["admin"] != adminPort {
		t.Errorf("container ports %v, config grpc_addr %s admin_addr %s", ports, cfg.GRPCAddr, cfg.AdminAddr)
	}
	mtls := cfg.GRPCTLS.ClientCAFile != ""
	if !mtls && !cfg.GRPCInsecure {
		t.Errorf("gRPC off loopback: want grpc_tls.client_ca_file (mTLS), or grpc_insecure behind a mesh")
	}
	for name, pr := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		switch {
		case pr == nil:
			t.Errorf("%s probe: none", name)
		case mtls:
			// Kubernetes' gRPC probes cannot present a client certificate.
			want := map[string]string{"readiness": "/readyz", "liveness": "/healthz"}[name]
			if h := pr.HTTPGet; h == nil || h.Path != want || (h.Port.StrVal != "admin" && h.Port.IntVal != adminPort) {
				t.Errorf("%s probe: with mTLS on gRPC, want httpGet %s on the admin port, got %+v", name, want, pr.ProbeHandler)
			}
		case pr.GRPC == nil:
			t.Errorf("%s probe: want a native grpc probe", name)
		case pr.GRPC.Port != grpcPort:
			t.Errorf("%s probe on port %d, gRPC listens on %d", name, pr.GRPC.Port, grpcPort)
		}
	}
	if mtls {
		// Each grpc_tls file comes from a Secret volume, read-only, readable by the
		// pod's group only. The Secret itself is created from the operator's CA, never
		// committed: it holds a private key.
		for key, path := range map[string]string{"cert_file": cfg.GRPCTLS.CertFile, "key_file": cfg.GRPCTLS.KeyFile, "client_ca_file": cfg.GRPCTLS.ClientCAFile} {
			if _, _, err := mountedSecretKey(&dep.Spec.Template.Spec, &c, path); err != nil {
				t.Errorf("grpc_tls.%s: %v", key, err)
			}
		}
	}
	checkNetworkPolicy(t, netpols, dep, grpcPort)
	sc := c.SecurityContext
	psc := dep.Spec.Template.Spec.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("runAsNonRoot must be true")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Error("want cpu/memory requests and a memory limit")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if mounts[cfg.DataDir] == "" {
		t.Errorf("data_dir %s is not a mounted volume (read-only root)", cfg.DataDir)
	}
	if mounts["/etc/vigil"] == "" {
		t.Error("config not mounted at /etc/vigil")
	}

	podLabels := labels.Set(dep.Spec.Template.Labels)
	depSel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil || !depSel.Matches(podLabels) {
		t.Errorf("Deployment selector does not match its pods: %v", err)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
		t.Error("Service selector does not match Vigil's pods")
	}
	pdbSel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || !pdbSel.Matches(podLabels) {
		t.Errorf("PDB selector does not match Vigil's pods: %v", err)
	}

	svcPorts := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = p
		target := p.TargetPort.IntVal
		if p.TargetPort.StrVal != "" {
			target = ports[p.TargetPort.StrVal]
		}
		if target == 0 {
			target = p.Port
		}
		if want := ports[p.Name]; want == 0 || target != want {
			t.Errorf("Service port %s targets %d, container port %s is %d", p.Name, target, p.Name, want)
		}
	}
	g, ok := svcPorts["grpc"]
	if !ok || g.Port != grpcPort || g.AppProtocol == nil || *g.AppProtocol != "grpc" {
		t.Errorf("Service needs port grpc %d with appProtocol grpc, got %+v", grpcPort, g)
	}
	if _, ok := svcPorts["admin"]; !ok {
		t.Error("Service has no admin port")
	}
	return cfg, dep
}

// configMapDoc is a ConfigMap holding vigil.yaml.
type configMapDoc struct {
	where string
	cm    *corev1.ConfigMap
	text  string
}

// secretData returns a Secret's values, stringData over data as the API server merges them.
func secretData(s *corev1.Secret) map[string]string {
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	for k, v := range s.StringData {
		out[k] = v
	}
	return out
}

// secretFileKeys are the config keys that name files holding secrets.
func secretFileKeys(cfg *config.Config) []struct {
	name string
	path *string
} {
	return []struct {
		name string
		path *string
	}{
		{"admin_token_file", &cfg.AdminTokenFile},
		{"admin_read_token_file", &cfg.AdminReadTokenFile},
		{"fingerprint_key_file", &cfg.FingerprintKeyFile},
		{"redis.password_file", &cfg.Redis.PasswordFile},
	}
}

// mountedSecretKey returns the Secret and key that the container's file at path
// comes from, or why it comes from none: path must be a file of a read-only
// Secret volume, readable by the pod's fsGroup and by no one else.
func mountedSecretKey(pod *corev1.PodSpec, c *corev1.Container, path string) (secret, key string, err error) {
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Volumes {
		volumes[pod.Volumes[i].Name] = &pod.Volumes[i]
	}
	// The innermost mount holding path is the one the file is in.
	var m *corev1.VolumeMount
	for i, mi := range c.VolumeMounts {
		dir := strings.TrimSuffix(mi.MountPath, "/") + "/"
		if strings.HasPrefix(path, dir) && mi.SubPath == "" && (m == nil || len(mi.MountPath) > len(m.MountPath)) {
			m = &c.VolumeMounts[i]
		}
	}
	if m != nil {
		rel := strings.TrimPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		v := volumes[m.Name]
		if v == nil || v.Secret == nil {
			return "", "", fmt.Errorf("%s is under %s, which is not a Secret volume", path, m.MountPath)
		}
		if !m.ReadOnly {
			return "", "", fmt.Errorf("Secret volume %s at %s is not mounted readOnly", m.Name, m.MountPath)
		}
		mode := int32(0o644) // the API server's default
		if v.Secret.DefaultMode != nil {
			mode = *v.Secret.DefaultMode
		}
		key = rel
		if len(v.Secret.Items) > 0 {
			key = ""
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					key = it.Key
					if it.Mode != nil {
						mode = *it.Mode
					}
				}
			}
			if key == "" {
				return "", "", fmt.Errorf("Secret volume %s at %s has no item with path %s", m.Name, m.MountPath, rel)
			}
		}
		// Kubernetes writes the files owned by root, group fsGroup: a non-root Vigil
		// reads them through the group bit.
		if mode&0o007 != 0 || mode&0o040 == 0 || pod.SecurityContext == nil || pod.SecurityContext.FSGroup == nil {
			return "", "", fmt.Errorf("%s has mode %#o: want it readable by the pod's fsGroup (set) and by no one else, e.g. 0440", path, mode)
		}
		return v.Secret.SecretName, key, nil
	}
	return "", "", fmt.Errorf("%s is not in any mounted volume", path)
}

// checkVigilConfig checks the ConfigMap's vigil.yaml: it holds no secret; every *_file
// key names a file the Deployment mounts from a key of a Secret in the manifests; it
// passes Vigil's own validation once those files hold valid values; and the Secret's
// committed placeholders do not. It returns the config, validated.
func checkVigilConfig(t *testing.T, d configMapDoc, dep *appsv1.Deployment, secrets map[string]*corev1.Secret) *config.Config {
	t.Helper()
	pod := &dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := &pod.Containers[0]
	var configMounted bool
	for _, m := range c.VolumeMounts {
		if m.MountPath != "/etc/vigil" {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == d.cm.Name {
				configMounted = len(v.ConfigMap.Items) == 0
				for _, it := range v.ConfigMap.Items {
					configMounted = configMounted || (it.Key == "vigil.yaml" && it.Path == "vigil.yaml")
				}
			}
		}
	}
	if !configMounted {
		t.Errorf("%s: ConfigMap %s is not mounted at /etc/vigil with vigil.yaml", d.where, d.cm.Name)
	}

	load := func() *config.Config {
		path := filepath.Join(t.TempDir(), "vigil.yaml")
		if err := os.WriteFile(path, []byte(d.text), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path)
		if err != nil {
			t.Fatalf("%s: vigil.yaml: %v", d.where, err)
		}
		return cfg
	}
	cfg := load()
	if cfg.AdminToken != "" || cfg.AdminReadToken != "" || cfg.FingerprintKey != "" {
		t.Errorf("%s: vigil.yaml sets a secret inline: use admin_token_file, admin_read_token_file, fingerprint_key_file", d.where)
	}
	for name, s := range secrets {
		for k, v := range secretData(s) {
			if strings.TrimSpace(v) != "" && strings.Contains(d.text, strings.TrimSpace(v)) {
				t.Errorf("%s: vigil.yaml holds the value of Secret %s key %s", d.where, name, k)
			}
		}
	}
	if cfg.AdminTokenFile == "" {
		t.Errorf("%s: vigil.yaml: want admin_token_file (the admin API listens off loopback)", d.where)
	}
	if cfg.FingerprintKeyFile == "" && (dep.Spec.Replicas == nil || *dep.Spec.Replicas > 1) {
		t.Errorf("%s: vigil.yaml: want fingerprint_key_file, so that every replica fingerprints credentials the same way", d.where)
	}

	// Where each *_file key's file comes from.
	type source struct{ secret, key string }
	sources := map[string]source{}
	for _, f := range secretFileKeys(cfg) {
		if *f.path == "" {
			continue
		}
		secret, key, err := mountedSecretKey(pod, c, *f.path)
		if err != nil {
			t.Errorf("%s: %s: %v", d.where, f.name, err)
			continue
		}
		s := secrets[secret]
		if s == nil {
			t.Errorf("%s: %s comes from Secret %s, which the manifests do not define", d.where, f.name, secret)
			continue
		}
		if s.Namespace != dep.Namespace {
			t.Errorf("%s: Secret %s is in namespace %q, the Deployment in %q", d.where, secret, s.Namespace, dep.Namespace)
		}
		if _, ok := secretData(s)[key]; !ok {
			t.Errorf("%s: %s comes from key %s of Secret %s, which has no such key", d.where, f.name, key, secret)
			continue
		}
		sources[f.name] = source{secret, key}
	}
	if t.Failed() {
		t.FailNow()
	}

	// With valid values in those files, the config passes Vigil's validation, as
	// `vigil serve --config /etc/vigil/vigil.yaml` runs it.
	valid := map[string]string{
		"admin_token_file":      "test-admin-token-" + strings.Repeat("a1", 16),
		"admin_read_token_file": "test-read-token-" + strings.Repeat("b2", 16),
		"fingerprint_key_file":  strings.Repeat("0123456789abcdef", 4),
		"redis.password_file":   strings.Repeat("9f8e", 16),
	}
	dir := t.TempDir()
	for _, f := range secretFileKeys(cfg) {
		if *f.path == "" {
			continue
		}
		*f.path = filepath.Join(dir, f.name)
		if err := os.WriteFile(*f.path, []byte(valid[f.name]+"\n"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: vigil.yaml invalid with valid secret files: %v", d.where, err)
	}

	// With the Secret's committed placeholders, it does not: a Secret applied unedited
	// stops Vigil at start with an error naming each file, not the placeholder.
	placeholders := load()
	pdir := t.TempDir()
	for _, f := range secretFileKeys(placeholders) {
		src, ok := sources[f.name]
		if !ok {
			continue
		}
		*f.path = filepath.Join(pdir, f.name)
		if err := os.WriteFile(*f.path, []byte(secretData(secrets[src.secret])[src.key]), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	err := placeholders.Validate()
	for name, src := range sources {
		if name == "redis.password_file" {
			// Any password is one to Vigil (a managed Redis chooses its own):
			// the Redis start script refuses the placeholder (TestRedisStartScript).
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "(from "+name+" ") {
			t.Errorf("%s: the placeholder in Secret %s key %s passes as %s: make it one Vigil refuses (got %v)", d.where, src.secret, src.key, name, err)
		} else if v := secretData(secrets[src.secret])[src.key]; strings.Contains(err.Error(), v) {
			t.Errorf("%s: Vigil's error shows the content of %s: %v", d.where, name, err)
		}
	}
	return cfg
}

// loadVigilConfig writes the embedded vigil.yaml to a file and loads and validates it
// exactly as `vigil serve --config` would.
func loadVigilConfig(t *testing.T, where, text string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("%s: vigil.yaml: %v", where, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("%s: vigil.yaml invalid: %v", where, err)
	}
	if len(cfg.AdminToken) < 16 {
		t.Fatalf("%s: admin_token placeholder must be at least 16 characters", where)
	}
	return cfg
}

// checkNetworkPolicy: a NetworkPolicy selects Vigil's pods for ingress, and every rule
// that opens the gRPC port names its peers: no rule lets every pod of every namespace,
// or an address block, reach it.
func checkNetworkPolicy(t *testing.T, netpols []*k8snetworkingv1.NetworkPolicy, dep *appsv1.Deployment, grpcPort int32) {
	t.Helper()
	podLabels := labels.Set(dep.Spec.Template.Labels)
	var selecting int
	for _, np := range netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || np.Namespace != dep.Namespace || !sel.Matches(podLabels) || !slices.Contains(np.Spec.PolicyTypes, k8snetworkingv1.PolicyTypeIngress) {
			continue
		}
		selecting++
		var grpcRules int
		for i, r := range np.Spec.Ingress {
			opens := len(r.Ports) == 0
			for _, p := range r.Ports {
				opens = opens || p.Port == nil || p.Port.StrVal == "grpc" || p.Port.IntVal == grpcPort
			}
			if !opens {
				continue
			}
			grpcRules++
			if len(r.From) == 0 {
				t.Errorf("NetworkPolicy %s: ingress[%d] opens gRPC to every source", np.Name, i)
			}
			for j, peer := range r.From {
				allPods := peer.PodSelector == nil || (len(peer.PodSelector.MatchLabels) == 0 && len(peer.PodSelector.MatchExpressions) == 0)
				allNamespaces := peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) == 0 && len(peer.NamespaceSelector.MatchExpressions) == 0
				if peer.IPBlock != nil || (allPods && (allNamespaces || peer.NamespaceSelector == nil)) {
					t.Errorf("NetworkPolicy %s: ingress[%d].from[%d] opens gRPC too wide: name Envoy's (or the gateway's) pods or namespace", np.Name, i, j)
				}
			}
		}
		if grpcRules == 0 {
			t.Errorf("NetworkPolicy %s: no rule admits Envoy to gRPC port %d", np.Name, grpcPort)
		}
	}
	if selecting == 0 {
		t.Errorf("want a NetworkPolicy (policyTypes Ingress) selecting Vigil's pods in %s", dep.Namespace)
	}
}

// ingressGatewayPrincipal is the identity of Istio's default ingress gateway.
const ingressGatewayPrincipal = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"

// checkIstio checks the EnvoyFilter (path normalisation, the ext_proc enforcer and the
// observer), the mesh's extension provider and the AuthorizationPolicy that uses it, and
// what admits callers to Vigil: the mesh's mTLS (STRICT) and an ALLOW policy naming the
// gateway's and workloads' identities.
func checkIstio(t *testing.T, docs []doc) {
	var policies, hcmPatches int
	var enforcer, observer *extprocv3.ExternalProcessor
	enforcerAt, observerAt := -1, -1
	providers := map[string]*meshapi.MeshConfig_ExtensionProvider{}
	var policyProviders []string
	var strict, allow, injected, redisAllow, redisStrict bool
	var streamsPerConn int32
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *networkingv1.DestinationRule:
			var spec networkingapi.DestinationRule
			if err := specStrict(d.raw, &spec); err != nil {
				t.Fatalf("%s: %v", d.where, err)
			}
			if spec.GetHost() == "vigil.vigil-system.svc.cluster.local" {
				streamsPerConn = spec.GetTrafficPolicy().GetConnectionPool().GetHttp().GetMaxConcurrentStreams()
			}
		case *networkingv1alpha3.EnvoyFilter:
			var spec networkingapi.EnvoyFilter
			if err := specStrict(d.raw, &spec); err != nil {
				t.Fatalf("%s: %v", d.where, err)
			}
			for i, p := range spec.GetConfigPatches() {
				tc := p.GetPatch().GetValue().GetFields()["typed_config"]
				if tc == nil {
					t.Errorf("%s: patch %d has no typed_config", d.where, i)
					continue
				}
				switch p.GetApplyTo() {
				case networkingapi.EnvoyFilter_NETWORK_FILTER:
					hcm, ok := decodeTypedConfig(t, d.where, tc.GetStructValue()).(*hcmv3.HttpConnectionManager)
					if !ok || p.GetPatch().GetOperation() != networkingapi.EnvoyFilter_Patch_MERGE ||
						p.GetMatch().GetListener().GetFilterChain().GetFilter().GetName() != "envoy.filters.network.http_connection_manager" {
						t.Errorf("%s: patch %d: want a MERGE into the http_connection_manager", d.where, i)
						continue
					}
					checkPathNormalisation(t, fmt.Sprintf("%s patch %d", d.where, i), hcm)
					hcmPatches++
				case networkingapi.EnvoyFilter_HTTP_FILTER:
					ep := checkExtProc(t, d.where, tc.GetStructValue())
					if ep.GetObservabilityMode() {
						observer, observerAt = ep, i
					} else {
						enforcer, enforcerAt = ep, i
					}
				default:
					t.Errorf("%s: patch %d applies to %v", d.where, i, p.GetApplyTo())
				}
			}
			_ = o
		case *securityv1.AuthorizationPolicy:
			var spec securityapi.AuthorizationPolicy
			if err := specStrict(d.raw, &spec); err != nil {
				t.Fatalf("%s: %v", d.where, err)
			}
			switch spec.GetAction() {
			case securityapi.AuthorizationPolicy_CUSTOM:
				policyProviders = append(policyProviders, spec.GetProvider().GetName())
				policies++
			case securityapi.AuthorizationPolicy_ALLOW:
				if o.Namespace == "vigil-system" && spec.GetSelector().GetMatchLabels()["app"] == "redis" {
					checkRedisCallers(t, d.where, &spec)
					redisAllow = true
					continue
				}
				if o.Namespace != "vigil-system" || spec.GetSelector().GetMatchLabels()["app"] != "vigil" {
					t.Errorf("%s: an ALLOW policy for Vigil selects app: vigil in vigil-system", d.where)
					continue
				}
				checkVigilCallers(t, d.where, &spec)
				allow = true
			default:
				t.Errorf("%s: action %v", d.where, spec.GetAction())
			}
		case *securityv1.PeerAuthentication:
			var spec securityapi.PeerAuthentication
			if err := specStrict(d.raw, &spec); err != nil {
				t.Fatalf("%s: %v", d.where, err)
			}
			sel := spec.GetSelector().GetMatchLabels()
			if o.Namespace == "vigil-system" && (len(sel) == 0 || sel["app"] == "vigil") {
				strict = spec.GetMtls().GetMode() == securityapi.PeerAuthentication_MutualTLS_STRICT
			}
			if o.Namespace == "vigil-system" && (len(sel) == 0 || sel["app"] == "redis") {
				redisStrict = spec.GetMtls().GetMode() == securityapi.PeerAuthentication_MutualTLS_STRICT
			}
		case *corev1.Namespace:
			if o.Name == "vigil-system" {
				injected = o.Labels["istio-injection"] == "enabled"
			}
		case *corev1.ConfigMap:
			text, ok := o.Data["mesh"]
			if !ok {
				continue
			}
			js, err := yaml.YAMLToJSON([]byte(text))
			if err != nil {
				t.Fatalf("%s: mesh: %v", d.where, err)
			}
			var mc meshapi.MeshConfig
			if err := protojson.Unmarshal(js, &mc); err != nil {
				t.Fatalf("%s: mesh: %v", d.where, err)
			}
			for _, p := range mc.GetExtensionProviders() {
				providers[p.GetName()] = p
			}
			switch n := mc.GetPathNormalization().GetNormalization(); n {
			case meshapi.MeshConfig_ProxyPathNormalization_MERGE_SLASHES, meshapi.MeshConfig_ProxyPathNormalization_DECODE_AND_MERGE_SLASHES:
			default:
				t.Errorf("%s: mesh pathNormalization %v, want MERGE_SLASHES", d.where, n)
			}
		}
	}
	if enforcer == nil || policies == 0 || len(providers) == 0 || hcmPatches == 0 {
		t.Fatalf("want an EnvoyFilter with an ext_proc and an HCM patch, an AuthorizationPolicy and a mesh extension provider; got %v, %d, %d, %d", enforcer != nil, policies, len(providers), hcmPatches)
	}
	// The response observer, as in the Envoy example: without it Vigil knows response
	// sizes only from Content-Length, and misses chunked responses (data exfiltration).
	if observer == nil {
		t.Fatal("want an observability_mode ext_proc (vigil.observe) streaming response bodies, as examples/envoy has")
	}
	ev := viewOf(t, mainEnvoy, decodeBootstrap(t, mainEnvoy))
	if !proto.Equal(observer.GetProcessingMode(), ev.observer.GetProcessingMode()) || !observer.GetFailureModeAllow() ||
		!slices.Equal(observer.GetResponseAttributes(), ev.observer.GetResponseAttributes()) {
		t.Errorf("observer: processing_mode %v, failure_mode_allow %v, response_attributes %v; want those of %s: %v, true, %v",
			observer.GetProcessingMode(), observer.GetFailureModeAllow(), observer.GetResponseAttributes(), mainEnvoy, ev.observer.GetProcessingMode(), ev.observer.GetResponseAttributes())
	}
	if observer.GetProcessingMode().GetResponseBodyMode() != extprocv3.ProcessingMode_STREAMED {
		t.Errorf("observer: response_body_mode %v, want STREAMED", observer.GetProcessingMode().GetResponseBodyMode())
	}
	if enforcerAt > observerAt {
		t.Errorf("the observer patch (%d) must come after the enforcer's (%d): both insert before the router", observerAt, enforcerAt)
	}
	// Envoy opens another connection before Vigil would refuse a stream on one.
	if max := config.Default().GRPC.MaxConcurrentStreams; streamsPerConn <= 0 || uint32(streamsPerConn) > max {
		t.Errorf("DestinationRule for Vigil: connectionPool.http.maxConcurrentStreams %d, want 1..%d (grpc.max_concurrent_streams)", streamsPerConn, max)
	}
	// Vigil listens plaintext behind its sidecar: the mesh admits its callers.
	if !injected || !strict || !allow {
		t.Errorf("Vigil behind the mesh: want vigil-system sidecar-injected (%v), a STRICT PeerAuthentication (%v) and an ALLOW AuthorizationPolicy naming its callers (%v)", injected, strict, allow)
	}
	// Redis in the mesh: mTLS and Vigil's identity only, as for Vigil's own port.
	if !redisStrict || !redisAllow {
		t.Errorf("Redis behind the mesh: want a STRICT PeerAuthentication (%v) and an ALLOW AuthorizationPolicy naming Vigil (%v)", redisStrict, redisAllow)
	}
	for _, name := range policyProviders {
		p := providers[name]
		if p == nil {
			t.Errorf("AuthorizationPolicy uses provider %q, not declared in the mesh config", name)
			continue
		}
		az := p.GetEnvoyExtAuthzGrpc()
		if az == nil {
			t.Errorf("provider %q is not envoyExtAuthzGrpc", name)
			continue
		}
		if az.GetService() != "vigil.vigil-system.svc.cluster.local" || az.GetPort() != 9000 {
			t.Errorf("provider %q points at %s:%d", name, az.GetService(), az.GetPort())
		}
		if az.GetFailOpen() || az.GetTimeout().AsDuration().Seconds() != 0.25 {
			t.Errorf("provider %q: want failOpen false and timeout 0.25s", name)
		}
	}
}

// checkRedisCallers: every rule of Redis' ALLOW policy names its sources by
// principal, all of the vigil-system namespace (Vigil's pods).
func checkRedisCallers(t *testing.T, where string, spec *securityapi.AuthorizationPolicy) {
	t.Helper()
	if len(spec.GetRules()) == 0 {
		t.Errorf("%s: Redis' ALLOW policy has no rule: nothing reaches Redis", where)
	}
	for i, r := range spec.GetRules() {
		if len(r.GetFrom()) == 0 {
			t.Errorf("%s: rule %d admits every caller to Redis", where, i)
		}
		for _, from := range r.GetFrom() {
			ps := from.GetSource().GetPrincipals()
			if len(ps) == 0 {
				t.Errorf("%s: rule %d: want Redis' callers named by principals", where, i)
			}
			for _, p := range ps {
				if !strings.HasPrefix(p, "cluster.local/ns/vigil-system/sa/") {
					t.Errorf("%s: rule %d: principal %q is not Vigil's", where, i, p)
				}
			}
		}
	}
}

// checkVigilCallers: every rule of Vigil's ALLOW policy that opens gRPC (9000) names
// its sources by principal, and the ingress gateway is one of them.
func checkVigilCallers(t *testing.T, where string, spec *securityapi.AuthorizationPolicy) {
	t.Helper()
	var gateway bool
	principal := regexp.MustCompile(`^cluster\.local/ns/[a-z0-9-]+/sa/[a-z0-9-]+$`)
	for i, r := range spec.GetRules() {
		opens := len(r.GetTo()) == 0
		for _, to := range r.GetTo() {
			ports := to.GetOperation().GetPorts()
			opens = opens || len(ports) == 0 || slices.Contains(ports, "9000")
		}
		if !opens {
			continue
		}
		if len(r.GetFrom()) == 0 {
			t.Errorf("%s: rule %d admits every caller to gRPC", where, i)
		}
		for _, from := range r.GetFrom() {
			ps := from.GetSource().GetPrincipals()
			if len(ps) == 0 {
				t.Errorf("%s: rule %d: want sources named by principals (the mesh's mTLS identities)", where, i)
			}
			for _, p := range ps {
				if !principal.MatchString(p) {
					t.Errorf("%s: rule %d: principal %q is not one service account", where, i, p)
				}
				gateway = gateway || p == ingressGatewayPrincipal
			}
		}
	}
	if !gateway {
		t.Errorf("%s: the ingress gateway (%s) is not admitted to gRPC", where, ingressGatewayPrincipal)
	}
}

// decodeTypedConfig decodes an EnvoyFilter patch's typed_config as Envoy would.
func decodeTypedConfig(t *testing.T, where string, tc *structpb.Struct) proto.Message {
	t.Helper()
	js, err := protojson.Marshal(tc)
	if err != nil {
		t.Fatalf("%s: typed_config: %v", where, err)
	}
	var a anypb.Any
	if err := protojson.Unmarshal(js, &a); err != nil {
		t.Fatalf("%s: typed_config: %v", where, err)
	}
	m, err := a.UnmarshalNew()
	if err != nil {
		t.Fatalf("%s: typed_config: %v", where, err)
	}
	return m
}

// checkExtProc decodes an EnvoyFilter patch's ext_proc typed_config as Envoy would,
// validates it, and checks the enforcer's or the observer's settings.
func checkExtProc(t *testing.T, where string, tc *structpb.Struct) *extprocv3.ExternalProcessor {
	t.Helper()
	m := decodeTypedConfig(t, where, tc)
	ep, ok := m.(*extprocv3.ExternalProcessor)
	if !ok {
		t.Fatalf("%s: typed_config is %T, want ExternalProcessor", where, m)
	}
	if err := ep.ValidateAll(); err != nil {
		t.Errorf("%s: ExternalProcessor: %v", where, err)
	}
	if got := ep.GetGrpcService().GetEnvoyGrpc().GetClusterName(); got != vigilCluster {
		t.Errorf("%s: cluster %q, want %q", where, got, vigilCluster)
	}
	if ep.GetObservabilityMode() {
		return ep
	}
	pm := ep.GetProcessingMode()
	if pm.GetRequestHeaderMode() != extprocv3.ProcessingMode_SEND ||
		pm.GetRequestBodyMode() != extprocv3.ProcessingMode_BUFFERED ||
		pm.GetResponseHeaderMode() != extprocv3.ProcessingMode_SEND {
		t.Errorf("%s: processing_mode %v", where, pm)
	}
	if ep.GetFailureModeAllow() || ep.GetMessageTimeout() == nil {
		t.Errorf("%s: want failure_mode_allow false and a message_timeout", where)
	}
	return ep
}

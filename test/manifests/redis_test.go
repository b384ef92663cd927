package manifests

// The Redis the examples' replicas share: a Deployment of several replicas
// comes with redis configured, its addresses name a Redis of the manifests (a
// StatefulSet behind its governing Service), Redis and Vigil mount the same
// password from one Secret, only Vigil's pods reach Redis, and the Redis
// start script refuses the committed placeholder and admits only the ACL user
// Vigil authenticates as, on Vigil's key prefix.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	k8snetworkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/test/vigilbin"
	"github.com/vigil-project/vigil/test/vigiltest"
)

// redisObjects are the Redis objects of one example directory.
type redisObjects struct {
	sts    *appsv1.StatefulSet
	svc    *corev1.Service
	secret *corev1.Secret
	netpol *k8snetworkingv1.NetworkPolicy
}

// findRedis returns the example's Redis: the one StatefulSet, the Service
// that governs it, the Secret its password comes from, and a NetworkPolicy
// selecting its pods.
func findRedis(t *testing.T, docs []doc) redisObjects {
	t.Helper()
	var r redisObjects
	var sets []*appsv1.StatefulSet
	svcs := map[string]*corev1.Service{}
	secrets := map[string]*corev1.Secret{}
	var netpols []*k8snetworkingv1.NetworkPolicy
	for _, d := range docs {
		switch o := d.obj.(type) {
		case *appsv1.StatefulSet:
			sets = append(sets, o)
		case *corev1.Service:
			svcs[o.Name] = o
		case *corev1.Secret:
			secrets[o.Name] = o
		case *k8snetworkingv1.NetworkPolicy:
			netpols = append(netpols, o)
		}
	}
	if len(sets) != 1 {
		t.Fatalf("want one Redis StatefulSet, got %d", len(sets))
	}
	r.sts = sets[0]
	r.svc = svcs[r.sts.Spec.ServiceName]
	if r.svc == nil {
		t.Fatalf("StatefulSet %s: serviceName %q is no Service of the manifests", r.sts.Name, r.sts.Spec.ServiceName)
	}
	pod := &r.sts.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("StatefulSet %s: want one container, got %d", r.sts.Name, len(pod.Containers))
	}
	name, _, err := mountedSecretKey(pod, &pod.Containers[0], redisPasswordPath)
	if err != nil {
		t.Fatalf("StatefulSet %s: the password: %v", r.sts.Name, err)
	}
	if r.secret = secrets[name]; r.secret == nil {
		t.Fatalf("StatefulSet %s: Secret %s is not in the manifests", r.sts.Name, name)
	}
	podLabels := labels.Set(r.sts.Spec.Template.Labels)
	for _, np := range netpols {
		if sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector); err == nil && sel.Matches(podLabels) {
			r.netpol = np
		}
	}
	return r
}

// redisPasswordPath is where the Redis container reads its ACL user's
// password.
const redisPasswordPath = "/etc/redis-auth/password"

// checkRedis: several Vigil replicas come with redis configured; its
// addresses name the manifests' Redis pods on their port; Vigil's
// redis.password_file is the key of the Secret Redis reads; Redis runs
// non-root on a read-only root with a memory limit and keeps its data on a
// volume; only Vigil's pods reach it.
func checkRedis(t *testing.T, docs []doc, cfg *config.Config, dep *appsv1.Deployment) {
	t.Helper()
	replicas := int32(1) // the API server's default
	if dep.Spec.Replicas != nil {
		replicas = *dep.Spec.Replicas
	}
	if replicas >= 2 && !cfg.Redis.Enabled() {
		t.Fatalf("Deployment %s: %d replicas without redis.addrs: each would learn from its share of the traffic alone, and a block would reach one of them", dep.Name, replicas)
	}
	if !cfg.Redis.Enabled() {
		return
	}
	if cfg.FingerprintKeyFile == "" {
		t.Error("redis.addrs without fingerprint_key_file: replicas would fingerprint credentials differently")
	}
	r := findRedis(t, docs)
	pod := &r.sts.Spec.Template.Spec
	c := &pod.Containers[0]

	// redis.addrs: <sts>-<ordinal>.<service>.<namespace>.svc.cluster.local:<port>.
	ports := map[int32]bool{}
	for _, p := range c.Ports {
		ports[p.ContainerPort] = true
	}
	var svcPort int32
	for _, p := range r.svc.Spec.Ports {
		target := p.TargetPort.IntVal
		for _, cp := range c.Ports {
			if p.TargetPort.StrVal == cp.Name {
				target = cp.ContainerPort
			}
		}
		if !ports[target] {
			t.Errorf("Service %s port %s targets %v, not a port of the Redis container", r.svc.Name, p.Name, p.TargetPort)
		}
		svcPort = p.Port
	}
	if r.svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s governs StatefulSet %s: it must be headless (clusterIP: None) for the pods' DNS names", r.svc.Name, r.sts.Name)
	}
	if len(r.svc.Spec.Selector) == 0 || !labels.SelectorFromSet(r.svc.Spec.Selector).Matches(labels.Set(r.sts.Spec.Template.Labels)) {
		t.Errorf("Service %s does not select Redis' pods", r.svc.Name)
	}
	for i, a := range cfg.Redis.Addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Errorf("redis.addrs[%d] %q: %v", i, a, err)
			continue
		}
		podName, rest, _ := strings.Cut(host, ".")
		ordinal, err := strconv.Atoi(strings.TrimPrefix(podName, r.sts.Name+"-"))
		if want := r.svc.Name + "." + r.svc.Namespace + ".svc.cluster.local"; rest != want || !strings.HasPrefix(podName, r.sts.Name+"-") ||
			err != nil || ordinal < 0 || r.sts.Spec.Replicas == nil || ordinal >= int(*r.sts.Spec.Replicas) {
			t.Errorf("redis.addrs[%d] %q: want a pod of StatefulSet %s: %s-N.%s", i, a, r.sts.Name, r.sts.Name, want)
		}
		if port != strconv.Itoa(int(svcPort)) {
			t.Errorf("redis.addrs[%d] %q: Redis listens on %d", i, a, svcPort)
		}
	}
	if r.sts.Namespace != dep.Namespace || r.svc.Namespace != dep.Namespace || r.secret.Namespace != dep.Namespace {
		t.Errorf("Redis' StatefulSet, Service and Secret belong in Vigil's namespace %s", dep.Namespace)
	}

	// One password: the key of the Secret Redis reads is the file Vigil reads.
	vpod := &dep.Spec.Template.Spec
	// (cfg's *_file paths point at the test's files: the file's own path.)
	var text string
	for _, d := range docs {
		if cm, ok := d.obj.(*corev1.ConfigMap); ok && cm.Data["vigil.yaml"] != "" {
			text = cm.Data["vigil.yaml"]
		}
	}
	secret, key, err := mountedSecretKey(vpod, &vpod.Containers[0], budgetConfig(t, text).Redis.PasswordFile)
	if err != nil {
		t.Fatalf("redis.password_file: %v", err)
	}
	_, rkey, _ := mountedSecretKey(pod, c, redisPasswordPath)
	if secret != r.secret.Name || key != rkey {
		t.Errorf("Vigil reads Redis' password from Secret %s key %s, Redis from Secret %s key %s", secret, key, r.secret.Name, rkey)
	}
	if cfg.Redis.Username == "" {
		t.Error("redis.username: want the ACL user of the Redis start script (the default user is off)")
	}

	// Redis itself: hardened as Vigil is, with data on a volume.
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("Redis: runAsNonRoot must be true")
	}
	if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("Redis: want readOnlyRootFilesystem and no privilege escalation")
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("Redis: want a memory request and limit")
	}
	if !pinned(c.Image) {
		t.Errorf("Redis: image %q is not pinned", c.Image)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	var claimed bool
	for _, vc := range r.sts.Spec.VolumeClaimTemplates {
		claimed = claimed || vc.Name == mounts["/data"]
	}
	if !claimed {
		t.Error("Redis: /data is not a volumeClaimTemplate: the append-only file would go with the pod")
	}
	if c.ReadinessProbe == nil || c.LivenessProbe == nil {
		t.Error("Redis: want readiness and liveness probes")
	}

	// Only Vigil's pods reach Redis.
	if r.netpol == nil || !slices.Contains(r.netpol.Spec.PolicyTypes, k8snetworkingv1.PolicyTypeIngress) {
		t.Fatal("want a NetworkPolicy (Ingress) selecting Redis' pods")
	}
	vigilPods := labels.Set(dep.Spec.Template.Labels)
	for i, rule := range r.netpol.Spec.Ingress {
		if len(rule.From) == 0 {
			t.Errorf("NetworkPolicy %s: ingress[%d] opens Redis to every source", r.netpol.Name, i)
		}
		for j, peer := range rule.From {
			sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
			if peer.PodSelector == nil || err != nil || sel.Empty() || !sel.Matches(vigilPods) || peer.NamespaceSelector != nil || peer.IPBlock != nil {
				t.Errorf("NetworkPolicy %s: ingress[%d].from[%d] admits more than Vigil's pods", r.netpol.Name, i, j)
			}
		}
	}

	// The start script's ACL user is redis.username, on redis.key_prefix.
	script := strings.Join(c.Args, "\n")
	if want := fmt.Sprintf("user %s on >%%s ~%s* ", cfg.Redis.Username, cfg.Redis.KeyPrefix); !strings.Contains(script, want) {
		t.Errorf("Redis start script: want the ACL line %q (redis.username on redis.key_prefix)", want)
	}
}

// TestRedisExamplesAgree: the Istio example runs the Kubernetes example's
// Redis (StatefulSet, Service, Secret), so that the start script checked
// below is the one both run.
func TestRedisExamplesAgree(t *testing.T) {
	k, i := findRedis(t, loadDir(t, "kubernetes")), findRedis(t, loadDir(t, "istio"))
	if !reflect.DeepEqual(k.sts, i.sts) || !reflect.DeepEqual(k.svc, i.svc) || !reflect.DeepEqual(k.secret, i.secret) {
		t.Error("examples/istio/redis.yaml's StatefulSet, Service and Secret differ from examples/kubernetes/redis.yaml's")
	}
}

// TestRedisStartScript runs the Kubernetes example's Redis start script with
// a real redis-server (paths moved into a temporary directory, a free
// loopback port): it refuses the Secret's committed placeholder and a
// password that is not letters and digits; with a generated password Redis
// admits the ACL user on Vigil's key prefix only, and nobody without the
// password.
func TestRedisStartScript(t *testing.T) {
	server := vigilbin.Tool(t, "redis-server", "Debian package redis-server")
	cli := vigilbin.Tool(t, "redis-cli", "Debian package redis-tools")
	docs := loadDir(t, "kubernetes")
	r := findRedis(t, docs)
	c := r.sts.Spec.Template.Spec.Containers[0]
	if len(c.Command) != 2 || c.Command[0] != "sh" || c.Command[1] != "-c" || len(c.Args) != 1 {
		t.Fatalf("Redis: command %q args %q, want sh -c SCRIPT", c.Command, c.Args)
	}
	var text string
	for _, d := range docs {
		if cm, ok := d.obj.(*corev1.ConfigMap); ok && cm.Data["vigil.yaml"] != "" {
			text = cm.Data["vigil.yaml"]
		}
	}
	cfg := budgetConfig(t, text)

	run := func(t *testing.T, password string) (int, func(), func() string, <-chan error) {
		return runRedisScript(t, server, c.Args[0], "/etc/redis-auth/password", password)
	}

	for _, pw := range []string{secretData(r.secret)["password"], "with space", "quote'd"} {
		_, stop, out, exited := run(t, pw)
		select {
		case err := <-exited:
			if err == nil || !strings.Contains(out(), "Secret redis-auth") {
				t.Errorf("password %q: the script exited with %v, want a refusal naming the Secret:\n%s", pw, err, out())
			}
		case <-time.After(10 * time.Second):
			stop()
			t.Errorf("password %q: Redis started", pw)
		}
	}

	password := strings.Repeat("5eed", 16)
	port, stop, out, exited := run(t, password)
	defer stop()
	checkRedisACL(t, cli, port, out, exited, cfg, password)
}

// runRedisScript runs a Redis start script of the examples with a real
// redis-server: its password file (passwordFile in the script) holds password,
// /run/redis/ and --dir /data are moved into a temporary directory, and Redis
// listens on a free loopback port. A script written for compose has $$ for $.
func runRedisScript(t *testing.T, server, script, passwordFile, password string) (port int, stop func(), out func() string, exited <-chan error) {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"run", "data"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pwPath := filepath.Join(dir, "password")
	if err := os.WriteFile(pwPath, []byte(password), 0o400); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	script = strings.NewReplacer(
		"$$", "$",
		passwordFile, pwPath,
		"/run/redis/", filepath.Join(dir, "run")+"/",
		"--dir /data", "--dir "+filepath.Join(dir, "data"),
		"exec redis-server ", fmt.Sprintf("exec %s --port %d --bind 127.0.0.1 ", server, port),
	).Replace(script)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	var buf lockedBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stop = func() { cancel(); <-done }
	return port, stop, buf.String, done
}

// checkRedisACL: the Redis on port admits redis.username with password, on
// keys under redis.key_prefix only, and refuses a wrong password and the
// default user.
func checkRedisACL(t *testing.T, cli string, port int, out func() string, exited <-chan error, cfg *config.Config, password string) {
	t.Helper()
	redis := func(user, pass string, args ...string) string {
		cmd := exec.Command(cli, append([]string{"-p", strconv.Itoa(port), "--no-auth-warning", "--user", user, "--pass", pass}, args...)...)
		b, _ := cmd.CombinedOutput()
		return strings.TrimSpace(string(b))
	}
	vigiltest.Eventually(t, 10*time.Second, func() error {
		select {
		case err := <-exited:
			t.Fatalf("Redis exited: %v\n%s", err, out())
		default:
		}
		if got := redis(cfg.Redis.Username, password, "PING"); got != "PONG" {
			return fmt.Errorf("the ACL user %s gets %q:\n%s", cfg.Redis.Username, got, out())
		}
		return nil
	})
	if got := redis(cfg.Redis.Username, password, "SET", cfg.Redis.KeyPrefix+"x", "1"); got != "OK" {
		t.Errorf("SET under the key prefix: %q", got)
	}
	if got := redis(cfg.Redis.Username, password, "SET", "other:x", "1"); !strings.Contains(got, "NOPERM") {
		t.Errorf("SET outside the key prefix: %q, want NOPERM", got)
	}
	if got := redis(cfg.Redis.Username, "wrong", "PING"); got == "PONG" {
		t.Error("a wrong password is admitted")
	}
	if got := redis("default", "", "PING"); got == "PONG" {
		t.Error("the default user is admitted")
	}
}

// TestComposeRedisScript runs the compose example's redis start script with a
// real redis-server and a password as gen-certs.sh makes it: the replicas'
// ACL user gets the keys of their prefix only.
func TestComposeRedisScript(t *testing.T) {
	server := vigilbin.Tool(t, "redis-server", "Debian package redis-server")
	cli := vigilbin.Tool(t, "redis-cli", "Debian package redis-tools")
	f := loadCompose(t)
	rs := f.Services["redis"]
	if len(rs.Command) != 3 {
		t.Fatalf("redis: command %q, want sh -c SCRIPT", rs.Command)
	}
	pw := redisPasswordRE.FindStringSubmatch(rs.Command[2])
	if pw == nil {
		t.Fatal("redis: the script reads no password file")
	}
	cfg, err := config.Load(filepath.Join(envoyDir, "vigil-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	password := strings.Repeat("c0de", 16)
	port, stop, out, exited := runRedisScript(t, server, rs.Command[2], pw[1], password)
	defer stop()
	checkRedisACL(t, cli, port, out, exited, cfg, password)
}

// lockedBuffer is a bytes.Buffer a process writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

package manifests

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/vigil-project/vigil/server/config"
)

// TestMemoryLimitCoversBudget: every example's Vigil container has a memory
// limit of at least its detection.max_memory (set in its vigil.yaml, or the
// default) plus the documented headroom: Go's soft limit (config.MemoryLimit,
// max_memory + 25%) and config.NonHeapOverhead. Below it, a flood of fresh
// identities would take the pod to its limit and the kernel would kill Vigil
// (with a fail-closed Envoy, the protected API with it); the default
// deployment fits in 512Mi.
func TestMemoryLimitCoversBudget(t *testing.T) {
	for _, dir := range manifestDirs {
		t.Run(dir, func(t *testing.T) {
			var deps []*appsv1.Deployment
			var text string
			for _, d := range loadDir(t, dir) {
				switch o := d.obj.(type) {
				case *appsv1.Deployment:
					deps = append(deps, o)
				case *corev1.ConfigMap:
					if v, ok := o.Data["vigil.yaml"]; ok {
						text = v
					}
				}
			}
			if len(deps) != 1 || len(deps[0].Spec.Template.Spec.Containers) != 1 || text == "" {
				t.Fatalf("want one Vigil Deployment with one container and a ConfigMap with vigil.yaml")
			}
			cfg := budgetConfig(t, text)
			c := deps[0].Spec.Template.Spec.Containers[0]
			limit := c.Resources.Limits.Memory()
			if limit.IsZero() {
				t.Fatal("no memory limit")
			}
			if err := memoryCovers(limit.Value(), cfg.Detection.MaxMemory); err != nil {
				t.Errorf("container %s: %v", c.Name, err)
			}
			if req := c.Resources.Requests.Memory(); req.Cmp(*limit) > 0 {
				t.Errorf("memory request %s above the limit %s", req, limit)
			}
			if limit.Value() > 512<<20 && cfg.Detection.MaxMemory == config.Default().Detection.MaxMemory {
				t.Errorf("memory limit %s: the default budget fits in 512Mi", limit)
			}
		})
	}
}

// memoryCovers says whether a memory limit holds max_memory and its headroom.
func memoryCovers(limit, maxMemory int64) error {
	cfg := config.Default()
	cfg.Detection.MaxMemory = maxMemory
	if need := cfg.MemoryLimit() + config.NonHeapOverhead; limit < need {
		return fmt.Errorf("memory limit %d bytes is below detection.max_memory %d + 25%% (Go's soft limit %d) + %d overhead = %d",
			limit, maxMemory, cfg.MemoryLimit(), int64(config.NonHeapOverhead), need)
	}
	return nil
}

// TestMemoryCovers checks the check: 512Mi holds the 384MiB default and no
// more, 1Gi the default but not 1GiB.
func TestMemoryCovers(t *testing.T) {
	for _, tc := range []struct {
		limit, maxMemory int64
		ok               bool
	}{
		{512 << 20, 384 << 20, true},
		{512 << 20, 385 << 20, false},
		{511 << 20, 384 << 20, false},
		{1 << 30, 384 << 20, true},
		{1 << 30, 1 << 30, false},
	} {
		if err := memoryCovers(tc.limit, tc.maxMemory); (err == nil) != tc.ok {
			t.Errorf("limit %d, max_memory %d: got %v, want ok %v", tc.limit, tc.maxMemory, err, tc.ok)
		}
	}
}

// budgetConfig reads an example's vigil.yaml on top of the defaults, as
// `vigil serve --config` does (not validated: its secret files are not here).
func budgetConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

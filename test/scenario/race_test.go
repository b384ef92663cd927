//go:build race

package scenario

import (
	"fmt"
	"os"
	"testing"
)

// TestMain skips the package under the race detector. The generator and
// the evaluator run in one goroutine, and the suite replays recorded
// traffic through an engine whose concurrency the detect and e2e tests
// already run under the race detector; instrumented, the package takes
// minutes where it takes one without. Every test here runs in the pass
// without -race (go test ./test/scenario; .ci/run runs both).
func TestMain(m *testing.M) {
	fmt.Println("test/scenario: skipped under -race (single-goroutine generator and evaluator); run go test ./test/scenario without -race")
	os.Exit(0)
}

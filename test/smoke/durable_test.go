package smoke

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/vigiltest"
)

func blocklist(t *testing.T, admin string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/v1/blocklist")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Entries []struct{ Value string } }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, e := range out.Entries {
		m[e.Value] = true
	}
	return m
}

// TestKillNineLosesNothingAcknowledged: entries acknowledged with 201 are
// there after kill -9 and a restart on the same data directory, even when
// the kill lands in the middle of writes (a torn write never corrupts the
// store).
func TestKillNineLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--data-dir", dir, "--drain-delay", "0s"}
	acked := map[string]bool{}
	for round := range 3 {
		p := serve(t, args...)
		have := blocklist(t, p.admin)
		for ip := range acked {
			if !have[ip] {
				t.Fatalf("round %d: acknowledged entry %s lost after kill -9", round, ip)
			}
		}
		// Writers hammer the admin API; the kill lands among their writes.
		var (
			mu   sync.Mutex
			stop atomic.Bool
			wg   sync.WaitGroup
			n    atomic.Int64
		)
		for w := range 4 {
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					ip := fmt.Sprintf("10.%d.%d.%d", round, w, i%250)
					body := fmt.Sprintf(`{"kind":"ip","value":%q,"ttl":"24h","reason":"round %d"}`, ip, round)
					resp, err := http.Post("http://"+p.admin+"/v1/blocklist", "application/json", strings.NewReader(body))
					if err != nil {
						return // the process is gone
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusCreated {
						mu.Lock()
						acked[ip] = true
						mu.Unlock()
						n.Add(1)
					}
				}
			})
		}
		deadline := time.Now().Add(10 * time.Second)
		for n.Load() < 100 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polling the writers' progress
		}
		p.Signal(syscall.SIGKILL)
		p.Wait(vigiltest.StopWithin) // killed: its exit error is expected
		stop.Store(true)
		wg.Wait()
		if n.Load() == 0 {
			t.Fatalf("round %d: no write was acknowledged", round)
		}
	}
	p := serve(t, args...)
	have := blocklist(t, p.admin)
	for ip := range acked {
		if !have[ip] {
			t.Fatalf("acknowledged entry %s lost", ip)
		}
	}
	t.Logf("%d acknowledged entries survived 3 kill -9s", len(acked))
}

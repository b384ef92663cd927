package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/server/cli"
)

// TestReplayBacktestsRecordedTraffic replays a recording (transaction records,
// Envoy access log lines and a few broken lines) through `vigil replay`:
// training happens on the first part with the records' clock, the prober in
// the second part is reported, and broken lines are reported and skipped.
func TestReplayBacktestsRecordedTraffic(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
data_dir: %s
training: {duration: 20m, min_requests: 500, min_identities: 10, relearn_interval: 10m}
apis:
  - {name: shop, hosts: [shop.example.com], base_path: /shopapi-bid, mode: detect}
`, dir)), 0o600)
	var in bytes.Buffer
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	line := func(ts time.Time, ip, path string, status int) {
		fmt.Fprintf(&in, `{"time":%q,"method":"GET","authority":"shop.example.com","path":%q,"status":%d,"client_ip":%q,"request_headers":{"authorization":"Bearer tok-%s","user-agent":"app"},"request_bytes":0,"response_bytes":512,"duration_ms":12}`+"\n",
			ts.Format(time.RFC3339Nano), path, status, ip, ip)
	}
	now := t0
	for i := range 3000 { // 50 minutes of benign traffic from 25 clients
		now = now.Add(time.Second)
		line(now, fmt.Sprintf("10.0.0.%d", i%25), fmt.Sprintf("/shopapi-bid/order/%d", i%40), 200)
	}
	in.WriteString("this is not json\n")
	in.WriteString(`{"time":"2026-11-27T10:50:00Z","method":"GET"}` + "\n")
	// The prober, in Envoy access log format.
	for i := range 120 {
		now = now.Add(500 * time.Millisecond)
		fmt.Fprintf(&in, `{"time":%q,"request_id":"r%d","client":"203.0.113.9","method":"GET","authority":"shop.example.com","path":"/shopapi-bid/admin%d","user_agent":"gobuster","status":404,"details":"via_upstream","flags":"-","bytes_in":0,"bytes_out":"19","duration_ms":1,"upstream":"127.0.0.1:8080"}`+"\n",
			now.Format(time.RFC3339Nano), i, i)
	}
	inPath, outPath := filepath.Join(dir, "traffic.jsonl"), filepath.Join(dir, "attacks.jsonl")
	os.WriteFile(inPath, in.Bytes(), 0o600)
	var stdout, stderr bytes.Buffer
	if err := cli.Main(context.Background(), []string{"replay", "--config", cfgPath, "--input", inPath, "--out", outPath}, &stdout, &stderr); err != nil {
		t.Fatalf("replay: %v\n%s", err, stderr.String())
	}
	summary := stderr.String()
	for _, want := range []string{"line 3001: skipped", "line 3002: skipped", "malformed (skipped)  2", "probing", "ready"} {
		if !strings.Contains(summary, want) {
			t.Fatalf("summary lacks %q:\n%s", want, summary)
		}
	}
	f, _ := os.Open(outPath)
	defer f.Close()
	var attacks []struct {
		Type, Action string
		API          string
		Identity     struct{ Kind, Value string }
		DetectedAt   time.Time `json:"detected_at"`
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var a struct {
			Type, Action string
			API          string
			Identity     struct{ Kind, Value string }
			DetectedAt   time.Time `json:"detected_at"`
		}
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("attack line %q: %v", sc.Text(), err)
		}
		attacks = append(attacks, a)
	}
	if len(attacks) == 0 {
		t.Fatalf("no attack reported\n%s", summary)
	}
	// 120 distinct 404s in a minute from one client is probing; at 120 calls
	// a minute against benign clients' 2.4 it is extreme activity too, and
	// nothing else.
	types := map[string]bool{}
	for _, a := range attacks {
		types[a.Type] = true
		if a.Type != "probing" && a.Type != "extreme_activity" {
			t.Errorf("attack of type %q, want probing or extreme_activity: %+v", a.Type, a)
		}
		if a.Identity.Value != "203.0.113.9" || a.API != "shop" || a.Action != "would_block" {
			t.Fatalf("unexpected attack %+v", a)
		}
		if a.DetectedAt.Before(t0.Add(50 * time.Minute)) {
			t.Fatalf("detected at %s, on the records' clock it is later", a.DetectedAt)
		}
	}
	if !types["probing"] {
		t.Errorf("the prober was not reported as probing; types %v", types)
	}
}

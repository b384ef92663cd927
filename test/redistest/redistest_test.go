package redistest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/test/redistest"
)

func TestServerKillRestartStopCont(t *testing.T) {
	s := redistest.Start(t)
	if got := s.Do("SET", "k", "v"); got != "OK" {
		t.Fatalf("SET = %q", got)
	}
	if got := s.Do("GET", "k"); got != "v" {
		t.Fatalf("GET = %q, want v", got)
	}
	if got := s.Do("CONFIG", "GET", "save"); got != "save\n" {
		t.Fatalf("CONFIG GET save = %q, want persistence off", got)
	}

	s.Kill()
	if _, err := redistest.Command(s.Addr(), "PING"); err == nil {
		t.Fatal("PING answered after Kill")
	}
	s.Restart()
	if got := s.Do("GET", "k"); got != "" {
		t.Fatalf("GET after Restart = %q, want empty (the server restarts without data)", got)
	}

	s.Stop()
	if _, err := redistest.CommandTimeout(s.Addr(), 300*time.Millisecond, "PING"); err == nil ||
		!strings.Contains(err.Error(), "timeout") {
		t.Fatalf("PING while stopped: %v, want a timeout (the server hangs)", err)
	}
	s.Cont()
	if got := s.Do("PING"); got != "PONG" {
		t.Fatalf("PING after Cont = %q", got)
	}
	// DEBUG is enabled for fault injection.
	if got := s.Do("DEBUG", "SLEEP", "0"); got != "OK" {
		t.Fatalf("DEBUG SLEEP = %q", got)
	}
}

func TestClusterServesEverySlot(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	if len(c.Addrs()) != 3 {
		t.Fatalf("Addrs = %v", c.Addrs())
	}
	for _, a := range c.Addrs() {
		info, err := redistest.Command(a, "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			t.Fatalf("%s: CLUSTER INFO = %q, %v", a, info, err)
		}
	}
	// Keys spread over the masters: each node refuses with MOVED the keys of
	// the others' slots, so at least two nodes own some of these keys.
	owners := map[string]bool{}
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		for _, a := range c.Addrs() {
			if _, err := redistest.Command(a, "SET", k, "1"); err == nil {
				owners[a] = true
			}
		}
	}
	if len(owners) < 2 {
		t.Fatalf("keys owned by %d nodes, want the slots spread over the masters", len(owners))
	}
}

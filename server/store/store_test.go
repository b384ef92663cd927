package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestListsSurviveReopenAndExpiredEntriesGo(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	j := s.ListJournal("block")
	j.PutEntry(detect.Entry{Kind: detect.KindIP, Value: "192.0.2.1", Reason: "a", CreatedAt: t0})
	j.PutEntry(detect.Entry{Kind: detect.KindToken, Value: "fp:00", Reason: "b", CreatedAt: t0, ExpiresAt: t0.Add(time.Minute), AttackID: "x1"})
	j.PutEntry(detect.Entry{Kind: detect.KindIP, Value: "192.0.2.2", Reason: "c", CreatedAt: t0})
	j.DeleteEntry(detect.KindIP, "192.0.2.2")
	s.Close()

	s = open(t, dir)
	got, err := s.LoadList("block", t0)
	if err != nil || len(got) != 2 {
		t.Fatalf("entries %+v, %v", got, err)
	}
	got, _ = s.LoadList("block", t0.Add(time.Hour))
	if len(got) != 1 || got[0].Value != "192.0.2.1" {
		t.Fatalf("after expiry: %+v", got)
	}
	got, _ = s.LoadList("block", t0) // the expired one was removed from disk
	if len(got) != 1 {
		t.Fatalf("the expired entry is still stored: %+v", got)
	}
	if other, _ := s.LoadList("allow", t0); len(other) != 0 {
		t.Fatalf("the allow list holds block entries: %+v", other)
	}
}

func TestAttackRetentionKeepsTheNewest(t *testing.T) {
	s := open(t, t.TempDir())
	s.AttackMax = 500
	for i := range 2000 {
		a := &detect.Attack{ID: fmt.Sprintf("a%04d", i), Type: detect.AttackProbing, DetectedAt: t0.Add(time.Duration(i) * time.Second)}
		if err := s.PutAttack(a); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.LoadAttacks(10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > 1500 || got[len(got)-1].ID != "a1999" || !got[0].DetectedAt.Before(got[len(got)-1].DetectedAt) {
		t.Fatalf("%d attacks kept, newest %s", len(got), got[len(got)-1].ID)
	}
	if latest, _ := s.LoadAttacks(3); len(latest) != 3 || latest[2].ID != "a1999" {
		t.Fatalf("the 3 newest: %+v", latest)
	}
}

func TestAttackRetentionByAge(t *testing.T) {
	s := open(t, t.TempDir())
	s.AttackMaxAge = time.Hour
	for i := range 1000 {
		s.PutAttack(&detect.Attack{ID: fmt.Sprintf("b%04d", i), DetectedAt: t0.Add(time.Duration(i) * 10 * time.Second)})
	}
	got, _ := s.LoadAttacks(10000)
	for _, a := range got {
		if a.DetectedAt.Before(t0.Add(999*10*time.Second - time.Hour)) {
			t.Fatalf("attack %s older than the retention age is kept", a.ID)
		}
	}
}

func TestOneProcessAtATime(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	start := time.Now()
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "another process holds it") {
		t.Fatalf("second open: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the second open hung")
	}
}

func TestModelsRoundTrip(t *testing.T) {
	s := open(t, t.TempDir())
	docs := []*behaviour.ModelDoc{{Version: 1, API: "shop", Types: map[detect.AttackType]behaviour.TypeKnobs{detect.AttackProbing: {Enabled: false, Sensitivity: 2}}}}
	if err := s.PutModels(docs); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadModels()
	if err != nil || len(got) != 1 || got[0].Types[detect.AttackProbing].Sensitivity != 2 {
		t.Fatalf("models %+v %v", got, err)
	}
}

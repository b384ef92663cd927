package detect

import (
	"fmt"
	"testing"
	"time"
)

type collect []*Transaction

func (c *collect) Consume(t *Transaction) { *c = append(*c, t) }

// A client that reuses one x-request-id cannot make its calls disappear:
// a second report from the same filter, or a request after the call was
// handed on, is a call of its own.
func TestJoinerDoesNotSwallowReusedRequestIDs(t *testing.T) {
	var out collect
	j := NewJoiner(time.Minute, 1000, &out)
	now := t0
	for i := range 100 {
		p := &Transaction{RequestID: "same", HasRequest: true, Complete: true, Status: 200, Path: fmt.Sprintf("/a/%d", i), Start: now, Sources: SourceExtProc}
		j.Add(p, now)
		a := &Transaction{RequestID: "same", HasRequest: true, Path: fmt.Sprintf("/a/%d", i), Start: now, Sources: SourceExtAuthz}
		j.Add(a, now)
	}
	j.Flush(now.Add(time.Hour), true)
	// Each report is a call of its own: 100 ext_proc calls and the 100
	// ext_authz requests that came after them.
	if len(out) != 200 {
		t.Fatalf("%d calls handed on for 200 reports, want 200", len(out))
	}
	authz := 0
	for _, c := range out {
		if c.Sources == SourceExtAuthz {
			authz++
		}
	}
	if authz != 100 {
		t.Fatalf("%d of the calls handed on are the ext_authz reports, want 100", authz)
	}
	// The legitimate case still joins: ext_authz's request, then ext_proc's
	// request and response, make one call.
	out = nil
	j.Add(&Transaction{RequestID: "r1", HasRequest: true, Sources: SourceExtAuthz, Start: now}, now)
	j.Add(&Transaction{RequestID: "r1", HasRequest: true, Complete: true, Status: 201, Sources: SourceExtProc, Start: now}, now)
	j.Add(&Transaction{RequestID: "r1", Complete: true, Status: 201, ResponseBytes: 9, Sources: SourceObserver, Start: now}, now)
	j.Flush(now.Add(time.Hour), true)
	if len(out) != 1 || out[0].Status != 201 || out[0].Sources != SourceExtAuthz|SourceExtProc {
		t.Fatalf("joined: %d calls, %+v", len(out), out)
	}
}

// Requests cannot slip out of their API with case, ";parameters" or
// doubled slashes, which back ends commonly ignore.
func TestCatalogMatchesDisguisedPaths(t *testing.T) {
	shop := &API{Name: "shop", BasePath: "/shopapi-bid"}
	c := NewCatalog([]*API{shop}, &API{BasePath: "/"})
	for _, p := range []string{"/shopapi-bid/upload", "/SHOPAPI-BID/upload", "/shopapi-bid;jsessionid=1/upload", "//shopapi-bid//upload", "/ShopApi-Bid;x=1", "/shopapi-bid"} {
		if got := c.Match("h", p); got != shop {
			t.Errorf("%s fell out of its API", p)
		}
	}
	for _, p := range []string{"/shopapi-bidder/x", "/shopapi", "/other/shopapi-bid"} {
		if got := c.Match("h", p); got == shop {
			t.Errorf("%s matched /shopapi-bid", p)
		}
	}
}

func TestStripParams(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b": "/a/b", "/shop;jsessionid=ABC/items": "/shop/items", "/a;x=1;y=2/b;z": "/a/b", ";x/a": "/a", "/": "/",
	} {
		if got := StripParams(in); got != want {
			t.Errorf("StripParams(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { StripParams("/plain/path/1") }); n != 0 {
		t.Errorf("%v allocations for a path without parameters", n)
	}
}

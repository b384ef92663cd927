package scenario

import (
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/vigil-project/vigil/server/demo/shop"
)

// The modelled API is the demo's bidding shop, server/demo/shop: its
// endpoints, statuses, sizes and latencies come from that package's model
// (the one the demo's handler serves); what is drawn how often, and the
// errors' latencies, are the scenario's.
const (
	Host      = shop.Host
	Base      = shop.BasePath
	LoginPath = shop.LoginPath
)

// Where clients carry their identities. A Vigil config replaying the
// scenario must read the same: token_header authorization, api_key_header
// x-api-key, username_header x-username, cookie session, login path
// /shopapi-bid/login.
const (
	HeaderToken    = "authorization" // "Bearer <opaque token>"
	HeaderAPIKey   = "x-api-key"
	HeaderUsername = "x-username"
	SessionCookie  = "session" // in the cookie header: "session=<opaque value>"
)

// Object IDs: orders live in [orderIDMin, orderIDMax).
const (
	orderIDMin = 100_000
	orderIDMax = 10_000_000
	itemIDMax  = 50_000
)

// call is one API call as recorded: what was asked and what came back.
type call struct {
	method, path string
	status       int
	req, resp    int64
	ms           float64
}

func itoa(i int) string { return strconv.Itoa(i) }

// latency returns a response time in milliseconds around median.
func latency(r *rand.Rand, median float64) float64 {
	return lognormal(r, median, 0.5, 1, 30_000)
}

// size draws a body size in the model's range.
func size(r *rand.Rand, rng [2]int64) int64 { return bytesBetween(r, rng[0], rng[1]) }

// errorBody is the size of a JSON error response.
func errorBody(r *rand.Rand) int64 { return size(r, shop.ErrorBytes) }

// ok is a good call of e at path (under Base) with a request body of req
// bytes.
func ok(r *rand.Rand, e *shop.Endpoint, path string, req int64) call {
	return call{e.Method, Base + path, e.Status, req, size(r, e.RespBytes), latency(r, e.LatencyMS)}
}

// failed is a call of e at path answered with an error status.
func failed(r *rand.Rand, e *shop.Endpoint, path string, status int, req int64, ms float64) call {
	return call{e.Method, Base + path, status, req, errorBody(r), latency(r, ms)}
}

// withID is e's path with the object ID filled in.
func withID(e *shop.Endpoint, id int) string { return strings.Replace(e.Path, "{id}", itoa(id), 1) }

func login(r *rand.Rand, user string, good bool) call {
	req := int64(len("username=&password=")+len(user)) + bytesBetween(r, 8, 16)
	if good {
		return ok(r, shop.Login, shop.Login.Path, req)
	}
	return failed(r, shop.Login, shop.Login.Path, 401, req, 80)
}

func listItems(r *rand.Rand) call {
	return ok(r, shop.ListItems, shop.ListItems.Path+"?page="+itoa(1+r.IntN(20)), 0)
}

func getItem(r *rand.Rand) call {
	p := withID(shop.GetItem, 1+r.IntN(itemIDMax))
	if chance(r, 0.02) { // a stale link
		return failed(r, shop.GetItem, p, 404, 0, 8)
	}
	return ok(r, shop.GetItem, p, 0)
}

// popularItem reads one of the 20 featured items, which the shop answers
// from its cache (median 10 ms).
func popularItem(r *rand.Rand) call {
	e := shop.GetItem
	return call{e.Method, Base + withID(e, 1+r.IntN(20)), e.Status, 0, size(r, e.RespBytes), latency(r, 10)}
}

var searchTerms = []string{"shoes", "laptop", "vintage+watch", "camera", "lego", "bike", "guitar", "sofa", "headphones", "drone", "coffee+grinder", "tent", "kindle", "monitor", "jacket"}

func search(r *rand.Rand) call {
	return ok(r, shop.Search, shop.Search.Path+"?q="+pick(r, searchTerms), 0)
}

func orderPath(id int) string { return Base + withID(shop.GetOrder, id) }

func getOrder(r *rand.Rand, id int) call { return ok(r, shop.GetOrder, withID(shop.GetOrder, id), 0) }

// getMissingOrder is a mistyped or stale order ID.
func getMissingOrder(r *rand.Rand) call {
	return failed(r, shop.GetOrder, withID(shop.GetOrder, orderIDMin+r.IntN(orderIDMax-orderIDMin)), 404, 0, 10)
}

// putOrder places a bid; size is the request body.
func putOrder(r *rand.Rand, size int64) call {
	if chance(r, 0.02) { // rejected by validation
		return failed(r, shop.PutOrder, shop.PutOrder.Path, 400, size, 15)
	}
	return ok(r, shop.PutOrder, shop.PutOrder.Path, size)
}

func patchOrder(r *rand.Rand, id int) call {
	return ok(r, shop.PatchOrder, withID(shop.PatchOrder, id), size(r, shop.PatchOrder.ReqBytes))
}

func deleteOrder(r *rand.Rand, id int) call {
	return call{shop.DeleteOrder.Method, Base + withID(shop.DeleteOrder, id), shop.DeleteOrder.Status, 0, 0, latency(r, shop.DeleteOrder.LatencyMS)}
}

func profile(r *rand.Rand) call { return ok(r, shop.Profile, shop.Profile.Path, 0) }

func cart(r *rand.Rand) call { return ok(r, shop.Cart, shop.Cart.Path, 0) }

func addToCart(r *rand.Rand) call {
	return ok(r, shop.AddToCart, shop.AddToCart.Path, size(r, shop.AddToCart.ReqBytes))
}

// export pulls limit records of about 400 bytes each.
func export(r *rand.Rand, limit, offset int) call {
	p := shop.Export.Path + "?limit=" + itoa(limit)
	if offset > 0 {
		p += "&offset=" + itoa(offset)
	}
	resp := int64(limit)*size(r, shop.Export.RespBytes) + shop.ExportEnvelope
	return call{shop.Export.Method, Base + p, shop.Export.Status, 0, resp, latency(r, shop.Export.LatencyMS+0.25*float64(limit))}
}

// typoPaths are paths benign clients hit by mistake now and then.
var typoPaths = []string{"/item", "/orders", "/favicon.ico", "/itmes", "/profil", "/order/", "/seach?q=shoes"}

func typo(r *rand.Rand) call {
	return call{"GET", Base + pick(r, typoPaths), 404, 0, errorBody(r), latency(r, 5)}
}

// serverError is an occasional failure of the back end.
func serverError(r *rand.Rand) call {
	c := pick(r, []func(*rand.Rand) call{listItems, search, profile, cart})(r)
	c.status, c.resp, c.ms = pick(r, []int{500, 502, 503}), errorBody(r), latency(r, 300)
	return c
}

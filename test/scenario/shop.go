package scenario

import (
	"math/rand/v2"
	"strconv"
)

// The modelled API: the talk's bidding shop.
const (
	Host      = "shop.example.com"
	Base      = "/shopapi-bid"
	LoginPath = Base + "/login"
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

// errorBody is the size of a JSON error response.
func errorBody(r *rand.Rand) int64 { return bytesBetween(r, 60, 140) }

func login(r *rand.Rand, user string, ok bool) call {
	req := int64(len("username=&password=")+len(user)) + bytesBetween(r, 8, 16)
	if ok {
		return call{"POST", LoginPath, 200, req, bytesBetween(r, 210, 260), latency(r, 90)}
	}
	return call{"POST", LoginPath, 401, req, errorBody(r), latency(r, 80)}
}

func listItems(r *rand.Rand) call {
	return call{"GET", Base + "/items?page=" + itoa(1+r.IntN(20)), 200, 0, bytesBetween(r, 4_000, 12_000), latency(r, 35)}
}

func getItem(r *rand.Rand) call {
	p := Base + "/items/" + itoa(1+r.IntN(itemIDMax))
	if chance(r, 0.02) { // a stale link
		return call{"GET", p, 404, 0, errorBody(r), latency(r, 8)}
	}
	return call{"GET", p, 200, 0, bytesBetween(r, 900, 3_000), latency(r, 15)}
}

// popularItem reads one of the 20 featured items.
func popularItem(r *rand.Rand) call {
	return call{"GET", Base + "/items/" + itoa(1+r.IntN(20)), 200, 0, bytesBetween(r, 900, 3_000), latency(r, 10)}
}

var searchTerms = []string{"shoes", "laptop", "vintage+watch", "camera", "lego", "bike", "guitar", "sofa", "headphones", "drone", "coffee+grinder", "tent", "kindle", "monitor", "jacket"}

func search(r *rand.Rand) call {
	return call{"GET", Base + "/search?q=" + pick(r, searchTerms), 200, 0, bytesBetween(r, 2_000, 15_000), latency(r, 60)}
}

func orderPath(id int) string { return Base + "/order/" + itoa(id) }

func getOrder(r *rand.Rand, id int) call {
	return call{"GET", orderPath(id), 200, 0, bytesBetween(r, 600, 1_500), latency(r, 20)}
}

// getMissingOrder is a mistyped or stale order ID.
func getMissingOrder(r *rand.Rand) call {
	return call{"GET", orderPath(orderIDMin + r.IntN(orderIDMax-orderIDMin)), 404, 0, errorBody(r), latency(r, 10)}
}

// putOrder places a bid; size is the request body.
func putOrder(r *rand.Rand, size int64) call {
	if chance(r, 0.02) { // rejected by validation
		return call{"PUT", Base + "/order", 400, size, errorBody(r), latency(r, 15)}
	}
	return call{"PUT", Base + "/order", 201, size, bytesBetween(r, 250, 400), latency(r, 45)}
}

func patchOrder(r *rand.Rand, id int) call {
	return call{"PATCH", orderPath(id), 200, bytesBetween(r, 120, 400), bytesBetween(r, 600, 1_500), latency(r, 40)}
}

func deleteOrder(r *rand.Rand, id int) call {
	return call{"DELETE", orderPath(id), 204, 0, 0, latency(r, 30)}
}

func profile(r *rand.Rand) call {
	return call{"GET", Base + "/profile", 200, 0, bytesBetween(r, 600, 1_000), latency(r, 12)}
}

func cart(r *rand.Rand) call {
	return call{"GET", Base + "/cart", 200, 0, bytesBetween(r, 300, 3_000), latency(r, 15)}
}

func addToCart(r *rand.Rand) call {
	return call{"POST", Base + "/cart", 200, bytesBetween(r, 60, 160), bytesBetween(r, 300, 3_000), latency(r, 25)}
}

// export pulls limit records of about 400 bytes each.
func export(r *rand.Rand, limit, offset int) call {
	p := Base + "/export?limit=" + itoa(limit)
	if offset > 0 {
		p += "&offset=" + itoa(offset)
	}
	resp := int64(limit)*bytesBetween(r, 350, 450) + 200
	return call{"GET", p, 200, 0, resp, latency(r, 40+0.25*float64(limit))}
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

package shop

// The shop's API: one model for the demo, which serves it (Handler), and
// for test/scenario, which generates labelled traffic of it. Every endpoint
// is listed once here with what a call to it normally answers; the demo's
// handler serves exactly these routes, Routes (TestHandlerServesTheModel; a
// route asked with another method answers 405, any other path 404), and
// the scenario's calls are built from the entries of Endpoints (its benign
// records are checked against them).
//
// Sizes and latencies are those of the production-sized shop the scenario
// models (tens of thousands of items, millions of orders), which the
// scenario draws from uniformly (sizes) or log-normally around the median
// (latency); the demo's 60-item catalogue answers with the real size of its
// JSON.

// Host is the shop's host name in generated traffic; the demo answers any.
const Host = "shop.example.com"

// BasePath is where the sample API lives.
const BasePath = "/shopapi-bid"

// LoginPath is where users log in (a form or JSON body).
const LoginPath = BasePath + "/login"

// Endpoint is one route of the API.
type Endpoint struct {
	Method string
	// Path is under BasePath, with {id} for an object ID; the query, if
	// any, is in Query.
	Path  string
	Query string
	// Auth: a bearer token is needed (401 without a valid one).
	Auth bool
	// Status answers a good call; Errors are the other statuses the shop
	// answers on this route (besides 401 when Auth).
	Status int
	Errors []int
	// ReqBytes and RespBytes are the body sizes of a good call, [min, max];
	// for Export, RespBytes is per exported record (plus ExportEnvelope).
	ReqBytes, RespBytes [2]int64
	// LatencyMS is the median response time of a good call.
	LatencyMS float64
}

// Pattern is the endpoint's net/http ServeMux pattern.
func (e *Endpoint) Pattern() string { return e.Method + " " + BasePath + e.Path }

// The endpoints.
var (
	Login       = &Endpoint{Method: "POST", Path: "/login", Status: 200, Errors: []int{400, 401}, RespBytes: [2]int64{210, 260}, LatencyMS: 90}
	ListItems   = &Endpoint{Method: "GET", Path: "/items", Query: "page=N", Status: 200, Errors: []int{400}, RespBytes: [2]int64{4_000, 12_000}, LatencyMS: 35}
	GetItem     = &Endpoint{Method: "GET", Path: "/items/{id}", Status: 200, Errors: []int{400, 404}, RespBytes: [2]int64{900, 3_000}, LatencyMS: 15}
	Search      = &Endpoint{Method: "GET", Path: "/search", Query: "q=…", Status: 200, Errors: []int{400}, RespBytes: [2]int64{2_000, 15_000}, LatencyMS: 60}
	GetOrder    = &Endpoint{Method: "GET", Path: "/order/{id}", Auth: true, Status: 200, Errors: []int{400, 404}, RespBytes: [2]int64{600, 1_500}, LatencyMS: 20}
	PutOrder    = &Endpoint{Method: "PUT", Path: "/order", Auth: true, Status: 201, Errors: []int{400}, RespBytes: [2]int64{250, 400}, LatencyMS: 45}
	PatchOrder  = &Endpoint{Method: "PATCH", Path: "/order/{id}", Auth: true, Status: 200, Errors: []int{400, 403, 404, 422}, ReqBytes: [2]int64{120, 400}, RespBytes: [2]int64{600, 1_500}, LatencyMS: 40}
	DeleteOrder = &Endpoint{Method: "DELETE", Path: "/order/{id}", Auth: true, Status: 204, Errors: []int{400, 403, 404}, LatencyMS: 30}
	Profile     = &Endpoint{Method: "GET", Path: "/profile", Auth: true, Status: 200, RespBytes: [2]int64{600, 1_000}, LatencyMS: 12}
	Cart        = &Endpoint{Method: "GET", Path: "/cart", Auth: true, Status: 200, RespBytes: [2]int64{300, 3_000}, LatencyMS: 15}
	AddToCart   = &Endpoint{Method: "POST", Path: "/cart", Auth: true, Status: 200, Errors: []int{400}, ReqBytes: [2]int64{60, 160}, RespBytes: [2]int64{300, 3_000}, LatencyMS: 25}
	Export      = &Endpoint{Method: "GET", Path: "/export", Query: "limit=N[&offset=M]", Auth: true, Status: 200, Errors: []int{400}, RespBytes: [2]int64{350, 450}, LatencyMS: 40}
	// UpdateProfile changes the user's account from a JSON object
	// ({"display_name", "email"}): the write a mass-assignment attacker
	// adds "role" to. The demo serves it and its users call it; the
	// scenario (test/scenario) does not generate it yet, so it is in
	// Routes but not in Endpoints.
	UpdateProfile = &Endpoint{Method: "PATCH", Path: "/profile", Auth: true, Status: 200, Errors: []int{400}, ReqBytes: [2]int64{20, 120}, RespBytes: [2]int64{600, 1_000}, LatencyMS: 25}
)

// Endpoints is every route of the API.
var Endpoints = []*Endpoint{Login, ListItems, GetItem, Search, GetOrder, PutOrder, PatchOrder, DeleteOrder, Profile, Cart, AddToCart, Export}

// Routes is every route the demo's handler serves: Endpoints and
// UpdateProfile.
func Routes() []*Endpoint { return append(Endpoints[:len(Endpoints):len(Endpoints)], UpdateProfile) }

// ExportEnvelope is the size of an export's answer around its records.
const ExportEnvelope = 200

// ErrorBytes is the size range of a JSON error answer.
var ErrorBytes = [2]int64{60, 140}

// Demo accounts: user1 … user200, passwords password1 … password200.
const NumUsers = 200

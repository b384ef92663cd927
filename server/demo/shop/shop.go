package shop

import (
	"bytes"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sample data sizes (NumUsers is in api.go).
const (
	ordersPerUser = 3
	// FirstOrderID is the ID of the first order; orders are numbered on.
	FirstOrderID = 100001
	maxExport    = 10000
	maxOrders    = 200000 // bids stored; past it a bid is answered but not kept
	maxPatchBody = 8 << 20
)

// User is a demo account. Email, DisplayName, City and Role change
// (PATCH /profile) under the shop's lock.
type User struct {
	Name        string
	Password    string
	Email       string
	DisplayName string
	City        string
	Role        string
}

// UserName returns the name of demo user i (1-based): user1 … user200.
func UserName(i int) string { return "user" + strconv.Itoa(i) }

// UserPassword returns the password of demo user i: password1 … password200.
func UserPassword(i int) string { return "password" + strconv.Itoa(i) }

type item struct {
	ID          int      `json:"id"`
	Title       string   `json:"title"`
	Category    string   `json:"category"`
	Description string   `json:"description"`
	Seller      string   `json:"seller"`
	Price       float64  `json:"current_bid"`
	Currency    string   `json:"currency"`
	EndsAt      string   `json:"ends_at"`
	Tags        []string `json:"tags"`
}

// Order is one bid on an item.
type Order struct {
	ID       int      `json:"id"`
	User     string   `json:"user"`
	ItemID   int      `json:"item_id"`
	Item     string   `json:"item"`
	Amount   float64  `json:"amount"`
	Quantity int      `json:"quantity"`
	Currency string   `json:"currency"`
	Status   string   `json:"status"`
	Note     string   `json:"note"`
	Created  string   `json:"created_at"`
	Shipping Shipping `json:"shipping"`
	Payment  Payment  `json:"payment"`
}

// Payment is how an order is paid.
type Payment struct {
	Method  string `json:"method"`
	Last4   string `json:"card_last4"`
	Email   string `json:"billing_email"`
	Invoice string `json:"invoice"`
}

// Shipping is an order's delivery address.
type Shipping struct {
	Name    string `json:"name"`
	Street  string `json:"street"`
	City    string `json:"city"`
	Zip     string `json:"zip"`
	Country string `json:"country"`
}

// Shop is the sample API modelled on the talk's bidding shop: users log in
// for a JWT-shaped bearer token, read orders, bid, search, export and patch
// orders with JSON Patch. GET /order/{id} deliberately answers any
// authenticated user for any existing order (broken object level
// authorization), the weakness an ID-walking attacker exploits; the
// gateway cannot see it, behaviour can.
type Shop struct {
	secret []byte
	now    func() time.Time
	users  map[string]*User
	items  []item

	mu     sync.RWMutex
	orders map[int]*Order
	byUser map[string][]int
	carts  map[string][]CartLine
	nextID int
}

// NewShop builds the shop's data from seed: the same seed gives the same
// users, items and orders. Tokens are signed with a fresh random key.
func NewShop(seed uint64) *Shop {
	r := rand.New(rand.NewPCG(seed, 0x5409))
	s := &Shop{secret: make([]byte, 32), now: time.Now, users: map[string]*User{}, orders: map[int]*Order{}, byUser: map[string][]int{}, carts: map[string][]CartLine{}}
	crand.Read(s.secret)
	for i := 1; i <= NumUsers; i++ {
		name := UserName(i)
		s.users[name] = &User{Name: name, Password: UserPassword(i), Email: name + "@mail.example", DisplayName: DisplayName(i), City: pick(r, cities), Role: "customer"}
	}
	for i := range 60 {
		noun, adj := pick(r, nouns), pick(r, adjectives)
		s.items = append(s.items, item{
			ID: i + 1, Title: adj + " " + noun.name, Category: noun.category,
			Description: fmt.Sprintf("%s %s in %s condition, %s. Shipped from %s within %d days; returns accepted for 14 days.", adj, noun.name, pick(r, conditions), pick(r, extras), pick(r, cities), 1+r.IntN(5)),
			Seller:      "seller" + strconv.Itoa(1+r.IntN(40)), Price: float64(5+r.IntN(900)) + 0.99, Currency: "EUR",
			EndsAt: time.Date(2026, 12, 1+r.IntN(28), r.IntN(24), 0, 0, 0, time.UTC).Format(time.RFC3339),
			Tags:   []string{noun.category, adj, pick(r, conditions)},
		})
	}
	// Orders belong to users in shuffled turns, so that each user's orders
	// are spread over the ID range and neighbouring IDs belong to others.
	owners := make([]string, 0, NumUsers*ordersPerUser)
	for range ordersPerUser {
		for i := 1; i <= NumUsers; i++ {
			owners = append(owners, UserName(i))
		}
	}
	r.Shuffle(len(owners), func(i, j int) { owners[i], owners[j] = owners[j], owners[i] })
	s.nextID = FirstOrderID
	for _, u := range owners {
		it := s.items[r.IntN(len(s.items))]
		s.addOrder(&Order{User: u, ItemID: it.ID, Item: it.Title, Amount: it.Price + float64(r.IntN(50)), Quantity: 1 + r.IntN(2),
			Currency: "EUR", Status: pick(r, []string{"open", "won", "outbid", "paid", "shipped"}),
			Created: time.Date(2026, 11, 1+r.IntN(28), r.IntN(24), r.IntN(60), 0, 0, time.UTC).Format(time.RFC3339)})
	}
	return s
}

func (s *Shop) addOrder(o *Order) {
	o.ID = s.nextID
	s.nextID++
	u := s.users[o.User]
	o.Shipping = Shipping{Name: strings.ToUpper(o.User[:1]) + o.User[1:], Street: strconv.Itoa(1+o.ID%180) + " " + streets[o.ID%len(streets)], City: u.City, Zip: strconv.Itoa(10000 + o.ID%89999), Country: "DE"}
	o.Payment = payment(o.ID, u.Email)
	if len(s.orders) < maxOrders {
		s.orders[o.ID] = o
		s.byUser[o.User] = append(s.byUser[o.User], o.ID)
	}
}

// OrdersOf returns the IDs of a user's orders.
func (s *Shop) OrdersOf(user string) []int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]int(nil), s.byUser[user]...)
}

// ItemCount is the number of catalogue items (IDs 1 … ItemCount).
func (s *Shop) ItemCount() int { return len(s.items) }

// SearchTerms are words that find items.
func SearchTerms() []string {
	out := make([]string, 0, len(nouns))
	for _, n := range nouns {
		out = append(out, n.name)
	}
	return out
}

// Handler serves the API under BasePath, exactly the routes of Endpoints,
// and GET /healthz.
func (s *Shop) Handler() http.Handler {
	public := map[*Endpoint]http.HandlerFunc{Login: s.login, ListItems: s.listItems, GetItem: s.getItem, Search: s.search}
	authed := map[*Endpoint]authedHandler{
		GetOrder: s.getOrder, PutOrder: s.putOrder, PatchOrder: s.patchOrder, DeleteOrder: s.deleteOrder,
		Profile: s.profile, UpdateProfile: s.updateProfile, Cart: s.cart, AddToCart: s.addToCart, Export: s.export,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	routes := Routes()
	for _, e := range routes {
		h := public[e]
		if e.Auth && authed[e] != nil {
			h = s.auth(authed[e])
		}
		if h == nil || e.Auth == (public[e] != nil) {
			panic("shop: the handler of " + e.Pattern() + " does not match the model")
		}
		mux.HandleFunc(e.Pattern(), h)
	}
	// A route asked with a method it does not serve: 405 with Allow.
	allow := map[string][]string{}
	var paths []string
	for _, e := range routes {
		if allow[e.Path] == nil {
			paths = append(paths, e.Path)
		}
		allow[e.Path] = append(allow[e.Path], e.Method)
	}
	for _, p := range paths {
		methods := strings.Join(allow[p], ", ")
		mux.HandleFunc(BasePath+p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed", "allow": methods})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found", "path": r.URL.Path})
	})
	return mux
}

func (s *Shop) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	var user, pass string
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var in struct{ Username, Password string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed JSON"})
			return
		}
		user, pass = in.Username, in.Password
	default:
		if err := r.ParseForm(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed form"})
			return
		}
		user, pass = r.PostForm.Get("username"), r.PostForm.Get("password")
	}
	u, ok := s.users[user]
	if !ok || !hmac.Equal([]byte(u.Password), []byte(pass)) {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid username or password"})
		return
	}
	s.mu.RLock()
	email := u.Email
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"token": s.issue(user), "token_type": "Bearer", "expires_in": 3600, "user": map[string]string{"name": u.Name, "email": email}})
}

var jwtHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// issue mints a JWT-shaped token: HS256 over {"sub","iat","exp","jti"}.
func (s *Shop) issue(user string) string {
	var jti [12]byte
	crand.Read(jti[:])
	now := s.now()
	payload, _ := json.Marshal(map[string]any{"sub": user, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": hex.EncodeToString(jti[:]), "scope": "orders bids"})
	msg := jwtHeader + "." + base64.RawURLEncoding.EncodeToString(payload)
	return msg + "." + base64.RawURLEncoding.EncodeToString(s.sign(msg))
}

func (s *Shop) sign(msg string) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// verify returns the user of a token this shop issued and that has not
// expired.
func (s *Shop) verify(token string) (string, bool) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || strings.Count(token, ".") != 2 {
		return "", false
	}
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil || !hmac.Equal(sig, s.sign(token[:i])) {
		return "", false
	}
	_, payload, _ := strings.Cut(token[:i], ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", false
	}
	var c struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if json.Unmarshal(raw, &c) != nil || s.users[c.Sub] == nil || s.now().Unix() > c.Exp {
		return "", false
	}
	return c.Sub, true
}

type authedHandler func(w http.ResponseWriter, r *http.Request, user string)

func (s *Shop) auth(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		user, ok := "", false
		if strings.EqualFold(scheme, "bearer") {
			user, ok = s.verify(strings.TrimSpace(token))
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shop"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid bearer token"})
			return
		}
		h(w, r, user)
	}
}

func (s *Shop) order(w http.ResponseWriter, r *http.Request) (Order, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "order id must be a number"})
		return Order{}, false
	}
	s.mu.RLock()
	o, ok := s.orders[id]
	var c Order
	if ok {
		c = *o
	}
	s.mu.RUnlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such order", "id": r.PathValue("id")})
		return Order{}, false
	}
	return c, true
}

// ownOrder is the order of the path if it is the user's (403 otherwise).
func (s *Shop) ownOrder(w http.ResponseWriter, r *http.Request, user string) (Order, bool) {
	o, ok := s.order(w, r)
	if ok && o.User != user {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "not your order"})
		return Order{}, false
	}
	return o, ok
}

// getOrder answers any authenticated user: the shop's BOLA weakness.
func (s *Shop) getOrder(w http.ResponseWriter, r *http.Request, user string) {
	if o, ok := s.order(w, r); ok {
		writeJSON(w, http.StatusOK, o)
	}
}

func (s *Shop) putOrder(w http.ResponseWriter, r *http.Request, user string) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	var in struct {
		ItemID   int     `json:"item_id"`
		Amount   float64 `json:"amount"`
		Quantity int     `json:"quantity"`
		Note     string  `json:"note"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed bid"})
		return
	}
	if in.ItemID < 1 || in.ItemID > len(s.items) || in.Amount <= 0 || in.Quantity < 0 || in.Quantity > 100 || len(in.Note) > 500 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid bid: item_id, amount > 0, quantity 1-100, note up to 500 characters"})
		return
	}
	it := s.items[in.ItemID-1]
	o := &Order{User: user, ItemID: it.ID, Item: it.Title, Amount: in.Amount, Quantity: max(in.Quantity, 1), Currency: "EUR",
		Status: "open", Note: in.Note, Created: s.now().UTC().Format(time.RFC3339)}
	s.mu.Lock()
	s.addOrder(o)
	c := *o
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, c)
}

type patchOp struct {
	Op    string          `json:"op"`
	Path  string          `json:"path"`
	Value json.RawMessage `json:"value"`
}

// patchOrder applies a JSON Patch (RFC 6902) to one of the user's orders;
// the fields that can change are amount, quantity, note and the shipping
// address.
func (s *Shop) patchOrder(w http.ResponseWriter, r *http.Request, user string) {
	o, ok := s.ownOrder(w, r, user)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxPatchBody)
	var ops []patchOp
	if err := json.NewDecoder(r.Body).Decode(&ops); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be a JSON Patch array"})
		return
	}
	for i, op := range ops {
		if err := applyPatch(&o, op); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": fmt.Sprintf("operation %d: %v", i, err)})
			return
		}
	}
	s.mu.Lock()
	if cur, ok := s.orders[o.ID]; ok {
		*cur = o
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, o)
}

func applyPatch(o *Order, op patchOp) error {
	var field any
	switch op.Path {
	case "/amount":
		field = &o.Amount
	case "/quantity":
		field = &o.Quantity
	case "/note":
		field = &o.Note
	case "/shipping/street":
		field = &o.Shipping.Street
	case "/shipping/city":
		field = &o.Shipping.City
	case "/shipping/zip":
		field = &o.Shipping.Zip
	default:
		return fmt.Errorf("path %q cannot be changed", op.Path)
	}
	switch op.Op {
	case "add", "replace":
		if err := json.Unmarshal(op.Value, field); err != nil {
			return fmt.Errorf("value of %s: %v", op.Path, err)
		}
	case "remove":
		if op.Path != "/note" {
			return fmt.Errorf("%s cannot be removed", op.Path)
		}
		o.Note = ""
	case "test":
		cur, _ := json.Marshal(field)
		var want any
		if json.Unmarshal(op.Value, &want) != nil {
			return errors.New("test value is not JSON")
		}
		w, _ := json.Marshal(want)
		if !bytes.Equal(cur, w) {
			return fmt.Errorf("test of %s failed", op.Path)
		}
	default:
		return fmt.Errorf("op %q not supported", op.Op)
	}
	if o.Amount <= 0 || o.Quantity < 1 || o.Quantity > 100 || len(o.Note) > 500 {
		return errors.New("result is not a valid order")
	}
	return nil
}

func (s *Shop) search(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	if q == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "q is required"})
		return
	}
	var hits []item
	for _, it := range s.items {
		if strings.Contains(strings.ToLower(it.Title), q) || strings.Contains(it.Category, q) || strings.Contains(strings.ToLower(it.Description), q) {
			hits = append(hits, it)
		}
	}
	if len(hits) > 20 {
		hits = hits[:20]
	}
	if hits == nil {
		hits = []item{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"query": q, "count": len(hits), "results": hits})
}

// export lists orders, up to limit (default 100, at most 10,000): the
// shop's reporting endpoint, whose large answers exfiltration abuses.
// Past the live orders it lists the archive (synthesised).
func (s *Shop) export(w http.ResponseWriter, r *http.Request, user string) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be a positive integer"})
			return
		}
		limit = min(n, maxExport)
	}
	out := make([]Order, 0, limit)
	s.mu.RLock()
	for id := FirstOrderID; len(out) < limit && id < s.nextID; id++ {
		if o, ok := s.orders[id]; ok {
			out = append(out, *o)
		}
	}
	s.mu.RUnlock()
	for id := FirstOrderID - 1; len(out) < limit; id-- {
		it := s.items[id%len(s.items)]
		u := UserName(1 + id%NumUsers)
		out = append(out, Order{ID: id, User: u, ItemID: it.ID, Item: it.Title, Amount: it.Price, Quantity: 1, Currency: "EUR", Status: "archived",
			Created:  time.Date(2025, time.Month(1+id%12), 1+id%28, id%24, id%60, 0, 0, time.UTC).Format(time.RFC3339),
			Shipping: Shipping{Name: u, Street: strconv.Itoa(1+id%180) + " " + streets[id%len(streets)], City: cities[id%len(cities)], Zip: strconv.Itoa(10000 + id%89999), Country: "DE"},
			Payment:  payment(id, u+"@mail.example")})
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": len(out), "orders": out})
}

// itemsPerPage is the page size of GET /items.
const itemsPerPage = 20

// listItems answers one page of the catalogue (?page=N, from 1); a page
// past the end is empty.
func (s *Shop) listItems(w http.ResponseWriter, r *http.Request) {
	page := 1
	if v := r.URL.Query().Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "page must be a positive integer"})
			return
		}
		page = n
	}
	from := min((page-1)*itemsPerPage, len(s.items))
	items := s.items[from:min(from+itemsPerPage, len(s.items))]
	writeJSON(w, http.StatusOK, map[string]any{"page": page, "per_page": itemsPerPage, "total": len(s.items), "items": items})
}

func (s *Shop) getItem(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "item id must be a number"})
		return
	}
	if id < 1 || id > len(s.items) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such item", "id": r.PathValue("id")})
		return
	}
	writeJSON(w, http.StatusOK, s.items[id-1])
}

// deleteOrder withdraws one of the user's own bids.
func (s *Shop) deleteOrder(w http.ResponseWriter, r *http.Request, user string) {
	o, ok := s.ownOrder(w, r, user)
	if !ok {
		return
	}
	s.mu.Lock()
	delete(s.orders, o.ID)
	ids := s.byUser[user]
	for i, id := range ids {
		if id == o.ID {
			s.byUser[user] = append(ids[:i:i], ids[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// profile answers the user's account and the IDs of their orders.
func (s *Shop) profile(w http.ResponseWriter, r *http.Request, user string) {
	writeJSON(w, http.StatusOK, s.account(user))
}

func (s *Shop) account(user string) map[string]any {
	u := s.users[user]
	s.mu.RLock()
	defer s.mu.RUnlock()
	return map[string]any{"name": u.Name, "display_name": u.DisplayName, "email": u.Email, "city": u.City, "role": u.Role, "orders": append([]int{}, s.byUser[user]...)}
}

// updateProfile changes the user's account from a JSON object:
// display_name, email, city. Like many real back ends it binds the body
// onto the account as a whole, so a "role" in it is taken too: the
// mass-assignment weakness (an attacker makes itself admin) that the
// gateway cannot see and content inspection refuses, since no user ever
// sends that key on this write.
func (s *Shop) updateProfile(w http.ResponseWriter, r *http.Request, user string) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	var in struct {
		DisplayName *string `json:"display_name"`
		Email       *string `json:"email"`
		City        *string `json:"city"`
		Role        *string `json:"role"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be a JSON object"})
		return
	}
	if in.DisplayName != nil && (*in.DisplayName == "" || len(*in.DisplayName) > 64) || in.Email != nil && !strings.Contains(*in.Email, "@") || in.City != nil && len(*in.City) > 64 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid profile: display_name 1-64 characters, email an address"})
		return
	}
	u := s.users[user]
	s.mu.Lock()
	for _, f := range []struct{ in, to *string }{{in.DisplayName, &u.DisplayName}, {in.Email, &u.Email}, {in.City, &u.City}, {in.Role, &u.Role}} {
		if f.in != nil {
			*f.to = *f.in
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, s.account(user))
}

// DisplayName is demo user i's display name as created: a first name and
// an initial.
func DisplayName(i int) string {
	return firstNames[i%len(firstNames)] + " " + string(rune('A'+i*7%26)) + "."
}

// ProfileEdit is the JSON body of a benign profile change of user i: a new
// display name, a new e-mail address or both, picked by n.
func ProfileEdit(i, n int) []byte {
	name := firstNames[(i+n)%len(firstNames)] + " " + lastNames[(i*3+n)%len(lastNames)]
	email := strings.ToLower(firstNames[(i+n)%len(firstNames)]) + "." + strconv.Itoa(i) + "@mail.example"
	var b []byte
	switch n % 4 {
	case 0:
		b, _ = json.Marshal(map[string]string{"display_name": name})
	case 1:
		b, _ = json.Marshal(map[string]string{"email": email})
	default:
		b, _ = json.Marshal(map[string]string{"display_name": name, "email": email})
	}
	return b
}

// CartLine is an item in a user's cart.
type CartLine struct {
	ItemID   int     `json:"item_id"`
	Item     string  `json:"item"`
	Quantity int     `json:"quantity"`
	Price    float64 `json:"price"`
}

func (s *Shop) cart(w http.ResponseWriter, r *http.Request, user string) {
	s.mu.RLock()
	lines := append([]CartLine{}, s.carts[user]...)
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "items": lines})
}

// maxCartLines bounds a cart.
const maxCartLines = 50

// addToCart puts {"item_id", "quantity"} into the user's cart and answers
// the cart.
func (s *Shop) addToCart(w http.ResponseWriter, r *http.Request, user string) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	var in struct {
		ItemID   int `json:"item_id"`
		Quantity int `json:"quantity"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.ItemID < 1 || in.ItemID > len(s.items) || in.Quantity < 0 || in.Quantity > 100 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid cart line: item_id of an item, quantity 1-100"})
		return
	}
	it := s.items[in.ItemID-1]
	s.mu.Lock()
	lines := s.carts[user]
	if len(lines) >= maxCartLines {
		lines = lines[1:]
	}
	lines = append(lines, CartLine{ItemID: it.ID, Item: it.Title, Quantity: max(in.Quantity, 1), Price: it.Price})
	s.carts[user] = lines
	out := append([]CartLine{}, lines...)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"user": user, "items": out})
}

func payment(id int, email string) Payment {
	return Payment{Method: []string{"card", "paypal", "sepa"}[id%3], Last4: strconv.Itoa(1000 + id*7919%9000), Email: email,
		Invoice: "INV-2026-" + strconv.Itoa(id)}
}

// writeJSON answers with a JSON body and its Content-Length, so that the
// response size reaches Vigil in the response headers.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// LoginForm is the form body of a login.
func LoginForm(user, password string) string {
	return url.Values{"username": {user}, "password": {password}}.Encode()
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

type noun struct{ name, category string }

var (
	nouns = []noun{{"watch", "watches"}, {"camera", "photo"}, {"laptop", "computers"}, {"guitar", "music"}, {"bike", "sports"},
		{"sofa", "home"}, {"drone", "electronics"}, {"headphones", "audio"}, {"lego set", "toys"}, {"jacket", "fashion"},
		{"tent", "outdoor"}, {"monitor", "computers"}, {"coffee grinder", "kitchen"}, {"kindle", "books"}, {"sneakers", "fashion"},
		{"turntable", "audio"}, {"lens", "photo"}, {"desk lamp", "home"}}
	adjectives = []string{"vintage", "mint", "refurbished", "limited", "classic", "compact", "pro", "signed", "rare", "wireless", "handmade", "boxed"}
	conditions = []string{"excellent", "good", "like-new", "used", "collector"}
	extras     = []string{"original box and papers", "two spare batteries", "a hard case", "the receipt", "a one-year warranty", "all accessories"}
	firstNames = []string{"Anna", "Jonas", "Lena", "Max", "Sophie", "Paul", "Mia", "Felix", "Emma", "Lukas", "Hannah", "David", "Julia", "Tom", "Sarah", "Nico"}
	lastNames  = []string{"Schmidt", "Mueller", "Becker", "Wagner", "Fischer", "Weber", "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf"}
	cities     = []string{"Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Stuttgart", "Leipzig", "Dresden", "Bremen", "Hanover"}
	streets    = []string{"Hauptstrasse", "Gartenweg", "Bahnhofstrasse", "Lindenallee", "Schillerplatz", "Bergstrasse", "Am Markt"}
)

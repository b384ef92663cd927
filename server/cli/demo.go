package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/inspect"
	"github.com/vigil-project/vigil/server"
	"github.com/vigil-project/vigil/server/adminapi"
	"github.com/vigil-project/vigil/server/config"
	"github.com/vigil-project/vigil/server/demo"
)

// Demo parameters.
const (
	demoAPI             = "shop-bidding"
	demoWindow          = 90 * time.Minute // recorded benign traffic fed before the live part
	demoSeed            = 1
	defaultDemoDuration = 60 * time.Second
)

const demoUsage = `Usage: vigil demo [--front-addr ADDR] [--admin-addr ADDR] [--grpc-addr ADDR] [--no-traffic] [--duration D]
                  [--replicas N --redis ADDR[,ADDR…]]

Runs, in one process and without Docker: Vigil; the sample shop API
(shop-bidding at /shopapi-bid, users user1…user200, passwords
password1…password200); and a local HTTP front door that consults Vigil
over Envoy's ext_proc protocol, a development stand-in for Envoy that is
not for production. It pre-trains the model on recorded benign traffic,
prints a line containing "ready" when the front door accepts requests,
then keeps a benign background load and plays a scripted attack timeline
through the front door, printing each detection as it happens, and a
summary after --duration. It exits non-zero when a scripted attack was not
detected or a benign user was blocked.

With --replicas N (and --redis, the shared state they need) it runs N
Vigil servers sharing one Redis, and the front door spreads calls over
them in turn, as Envoy's round-robin load balancing does: every attack is
seen a third (with 3) by each replica, and must still be detected and
blocked on all of them. --admin-addr and --grpc-addr are the first
replica's; the others listen on free loopback ports.

The front door trusts one proxy hop: a client's X-Forwarded-For: A makes A
the client address Vigil sees.

Flags:
`

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("vigil demo", demoUsage, stderr)
	frontAddr := fs.String("front-addr", "127.0.0.1:10000", "front door (Envoy stand-in) listen address")
	adminAddr := fs.String("admin-addr", "127.0.0.1:9001", "Vigil's admin API and dashboard listen address")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:9000", "Vigil's gRPC (ext_proc) listen address")
	noTraffic := fs.Bool("no-traffic", false, "only the trained stack: no background load, no attacks; runs until interrupted (or for --duration when given)")
	duration := fs.Duration("duration", defaultDemoDuration, "how long the live part (background load and attacks) runs before the summary")
	dataDir := fs.String("data-dir", "", "Vigil's data directory (default: a fresh temporary directory, removed at exit); one reused from an earlier run keeps its block list")
	logLevel := fs.String("log-level", "error", "level of Vigil's own JSON log on stderr: debug, info, warn or error")
	replicas := fs.Int("replicas", 1, "Vigil servers behind the front door, which spreads calls over them round robin (more than 1 needs --redis)")
	redisAddrs := fs.String("redis", "", "Redis address(es) host:port, comma-separated, that the replicas share state through (a fresh key prefix per run unless --data-dir is given)")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if *duration <= 0 {
		return fmt.Errorf("%w: --duration must be positive", ErrUsage)
	}

	if *replicas < 1 {
		return fmt.Errorf("%w: --replicas must be at least 1", ErrUsage)
	}
	if *replicas > 1 && *redisAddrs == "" {
		return fmt.Errorf("%w: --replicas %d needs --redis ADDR: without shared state each replica would see only every %s call of an attacker and stay under its thresholds, and a block decided on one would not reach the others", ErrUsage, *replicas, ordinal(*replicas))
	}
	var dir string
	if *dataDir == "" {
		d, err := os.MkdirTemp("", "vigil-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else {
		dir = *dataDir
	}
	cfgs, err := demoConfigs(*replicas, dir, *dataDir != "", *redisAddrs, *grpcAddr, *adminAddr, *logLevel)
	if err != nil {
		return err
	}
	frontL, err := net.Listen("tcp", *frontAddr)
	if err != nil {
		return fmt.Errorf("listen front door on %s: %w", *frontAddr, err)
	}
	defer frontL.Close()

	out := &demoOutput{w: stdout, terminal: isTerminal(stdout)}
	shop := demo.NewShop(demoSeed)
	shopL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen shop: %w", err)
	}
	shopSrv := &http.Server{Handler: shop.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go shopSrv.Serve(shopL)
	defer shopSrv.Close()

	servers, stop, err := startReplicas(cfgs, stderr)
	if err != nil {
		return err
	}
	defer stop()
	s := servers[0]

	if len(servers) == 1 {
		out.printf("Vigil %s: gRPC %s, admin %s; sample API shop-bidding on %s\n", server.Version, s.GRPCAddr(), s.AdminAddr(), shopL.Addr())
	} else {
		out.printf("Vigil %s: %d replicas sharing Redis %s; sample API shop-bidding on %s\n", server.Version, len(servers), *redisAddrs, shopL.Addr())
		for i, r := range servers {
			out.printf("  replica %d (%s): gRPC %s, admin %s\n", i+1, cfgs[i].Redis.ReplicaID, r.GRPCAddr(), r.AdminAddr())
		}
	}
	w := &attackWatcher{admin: adminapi.NewClient(s.AdminAddr(), ""), out: out}
	w.prime(ctx) // attacks a reused --data-dir holds from earlier runs are not this run's
	if *dataDir != "" {
		w.unblockScripted(ctx) // so that the script's attackers are detected again, not refused at once
	}
	if err := pretrain(ctx, servers, shop, out); err != nil {
		if ctx.Err() != nil {
			return stop() // interrupted: a clean stop
		}
		return err
	}

	clients := make([]extprocv3.ExternalProcessorClient, len(servers))
	for i, r := range servers {
		conn, err := grpc.NewClient(r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		clients[i] = extprocv3.NewExternalProcessorClient(conn)
	}
	door := &demo.FrontDoor{Upstream: &url.URL{Scheme: "http", Host: shopL.Addr().String()}, ExtProc: demo.RoundRobin(clients...)}
	frontSrv := &http.Server{Handler: door, ReadHeaderTimeout: 5 * time.Second}
	go frontSrv.Serve(frontL)
	defer frontSrv.Close()

	front, admin := frontL.Addr().String(), s.AdminAddr()
	out.printf("ready front=%s admin=%s grpc=%s\n", front, admin, s.GRPCAddr())
	out.printf("  sample API (through the front door): http://%s%s   users user1…user200, passwords password1…password200\n", front, demo.BasePath)
	out.printf("  dashboard:                           http://%s/\n", admin)
	out.printf("  try:                                 curl -s -H 'X-Forwarded-For: 203.0.113.7' 'http://%s%s/search?q=watch'\n", front, demo.BasePath)

	w.start = time.Now()
	if *noTraffic {
		w.script = nil
		wctx, cancel := context.WithCancel(ctx)
		if durationSet {
			wctx, cancel = context.WithTimeout(ctx, *duration)
		}
		defer cancel()
		out.printf("No traffic: attack the front door yourself; Ctrl-C stops.\n")
		w.run(wctx)
		out.printf("Stopping.\n")
		frontSrv.Shutdown(context.Background())
		return stop()
	}

	script := demo.Script()
	w.script = script
	transport := &http.Transport{MaxIdleConnsPerHost: 64, ExpectContinueTimeout: 2 * time.Second}
	hc := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	load := &demo.Load{Shop: shop, HTTP: hc, Base: "http://" + front, Users: demo.BackgroundUsers, Seed: demoSeed}
	out.printf("Live for %s: %d demo users in the background; the attacks start in 2 seconds.\n", *duration, demo.BackgroundUsers)
	liveCtx, stopLive := context.WithTimeout(ctx, *duration)
	defer stopLive()
	var wg sync.WaitGroup
	wg.Go(func() { load.Run(liveCtx) })
	wg.Go(func() { demo.PlayScript(liveCtx, script, hc, "http://"+front, shop) })
	w.run(liveCtx)
	wg.Wait()
	if ctx.Err() != nil {
		frontSrv.Shutdown(context.Background())
		return stop()
	}
	// The last calls' records reach detection within the join window.
	w.settle(ctx, 3*time.Second)
	err = w.summary(load.Stats())
	if len(servers) > 1 {
		err = errors.Join(err, w.blockedEverywhere(ctx, servers))
	}
	frontSrv.Shutdown(context.Background())
	if serr := stop(); err == nil {
		err = serr
	}
	return err
}

// demoConfigs returns the configuration of each of n replicas: the demo's,
// each with its own data directory and, past the first, free loopback
// ports; with Redis, one fingerprint key for all (a cluster refuses a
// replica whose key differs) and a key prefix of this run's own unless the
// data directory is reused.
func demoConfigs(n int, dir string, reused bool, redisAddrs, grpcAddr, adminAddr, logLevel string) ([]*config.Config, error) {
	var key, prefix string
	if redisAddrs != "" {
		var err error
		if key, err = demoFingerprintKey(dir, reused); err != nil {
			return nil, err
		}
		prefix = "vigil-demo:"
		if !reused {
			prefix += key[:8] + ":"
		}
	}
	cfgs := make([]*config.Config, n)
	for i := range cfgs {
		cfg := config.Default()
		if err := cfg.Decode(demo.ConfigYAML()); err != nil {
			return nil, fmt.Errorf("demo config: %w", err)
		}
		cfg.GRPCAddr, cfg.AdminAddr, cfg.LogLevel = grpcAddr, adminAddr, logLevel
		cfg.DataDir = dir
		if n > 1 {
			cfg.DataDir = filepath.Join(dir, fmt.Sprintf("replica-%d", i+1))
			if i > 0 {
				cfg.GRPCAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
			}
		}
		if redisAddrs != "" {
			cfg.FingerprintKey = key
			cfg.Redis.Addrs = strings.Split(redisAddrs, ",")
			cfg.Redis.KeyPrefix = prefix
			cfg.Redis.ReplicaID = fmt.Sprintf("demo-%d", i+1)
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, err
		}
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
		cfgs[i] = cfg
	}
	return cfgs, nil
}

// demoFingerprintKey is the replicas' shared fingerprint key: a fresh one,
// or the one a reused data directory keeps.
func demoFingerprintKey(dir string, reused bool) (string, error) {
	path := filepath.Join(dir, "demo-fingerprint-key")
	if reused {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	key := hex.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return key, os.WriteFile(path, []byte(key+"\n"), 0o600)
}

// startReplicas builds and runs a server per configuration; stop stops them
// all (once) and returns the first error.
func startReplicas(cfgs []*config.Config, stderr io.Writer) (servers []*server.Server, stop func() error, err error) {
	runCtx, stopAll := context.WithCancel(context.Background())
	var errs []chan error
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopAll()
		var err error
		for _, c := range errs {
			err = errors.Join(err, <-c)
		}
		return err
	}
	for _, cfg := range cfgs {
		s, err := server.New(cfg, server.NewLogger(stderr, cfg), server.Options{})
		if err != nil {
			stop()
			if len(cfgs) > 1 {
				err = fmt.Errorf("replica %s: %w", cfg.Redis.ReplicaID, err)
			}
			return nil, nil, err
		}
		c := make(chan error, 1)
		go func() { c <- s.Run(runCtx) }()
		servers, errs = append(servers, s), append(errs, c)
	}
	return servers, stop, nil
}

// blockedEverywhere checks that every blocked scripted attacker is on every
// replica's block list (within 2 seconds: the lists follow each other
// through Redis) and says so.
func (w *attackWatcher) blockedEverywhere(ctx context.Context, servers []*server.Server) error {
	want := map[[2]string]string{}
	for a, ds := range w.found {
		for _, d := range ds {
			if d.Attack.Action == "blocked" {
				want[[2]string{d.Attack.Identity.Kind, d.Attack.Identity.Value}] = a.Name
			}
		}
	}
	var missing []string
	deadline := time.Now().Add(2 * time.Second)
	for {
		missing = missing[:0]
		for i, s := range servers {
			list, err := adminapi.NewClient(s.AdminAddr(), "").Entries(ctx, "blocklist")
			if err != nil {
				missing = append(missing, fmt.Sprintf("replica %d: %v", i+1, err))
				continue
			}
			have := map[[2]string]bool{}
			for _, e := range list.Entries {
				have[[2]string{e.Kind, e.Value}] = true
			}
			for k, name := range want {
				if !have[k] {
					missing = append(missing, fmt.Sprintf("replica %d lacks the block of %s (%s)", i+1, name, k[0]))
				}
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return errors.New("demo: not blocked on every replica: " + strings.Join(missing, "; "))
	}
	w.out.printf("  blocked on every replica: %d identities on all %d block lists\n", len(want), len(servers))
	return nil
}

// ordinal names the n-th (2nd, 3rd, 4th…).
func ordinal(n int) string {
	switch {
	case n%100/10 == 1:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}

// awaitTrainer waits until the replicas see each other and one of them
// holds the trainer lease: the trainer's model becomes ready on a call
// that finds it trainer and counting every replica's calls, and the
// recorded traffic must not have gone by before.
func awaitTrainer(ctx context.Context, servers []*server.Server) error {
	if len(servers) == 1 {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		trainers, seeAll := 0, true
		for _, s := range servers {
			st := s.ClusterStatus()
			if st == nil || !st.RedisUp || st.Replicas != len(servers) {
				seeAll = false
			} else if st.Trainer {
				trainers++
			}
		}
		if seeAll && trainers == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("pre-training: the replicas did not all join and elect a trainer in 30s (is Redis reachable?)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pretrain feeds the generated benign traffic to the replicas, record i to
// replica i mod N as a round-robin load balancer would, and shows the
// model's training progress until it is ready on every replica.
func pretrain(ctx context.Context, servers []*server.Server, shop *demo.Shop, out *demoOutput) error {
	end := time.Now()
	recs := demo.Pretraining{Shop: shop, Seed: demoSeed, End: end, Window: demoWindow}.Records()
	if err := awaitTrainer(ctx, servers); err != nil {
		return err
	}
	// Content inspection's profile learner gets every recorded call, not
	// one in four as live: each replica is fed only its share of them. For
	// the same reason a replica sees about one in N of the users of a rare
	// character class (a '>' or '+' in a search): it trusts a class, a type
	// or a key once ceil(5/N) identities used it there, at least 2 (one
	// client alone never makes anything trusted).
	if err := demoInspection(ctx, servers, map[string]int{"sample_every": 1, "min_identities": demoMinIdentities(len(servers))}); err != nil {
		return err
	}
	out.printf("Pre-training %s on %s of recorded benign traffic: %d calls from %d users…\n", demoAPI, demoWindow, len(recs), demo.NumUsers)
	started := time.Now()
	// The least advanced replica's model: training is over when every
	// replica's is ready (one trains, the others adopt its model).
	status := func() behaviour.ModelStatus {
		var first behaviour.ModelStatus
		for i, s := range servers {
			m := behaviour.ModelStatus{API: demoAPI, State: "learning"}
			for _, sm := range s.Models() {
				if sm.API == demoAPI {
					m = sm
				}
			}
			if m.State != "ready" {
				return m
			}
			if i == 0 {
				first = m
			}
		}
		return first
	}
	lastQuarter := -1
	show := func(fed int, m behaviour.ModelStatus) {
		pct := 100 * fed / max(len(recs), 1)
		if m.State != "ready" {
			pct = min(pct, 99)
		}
		state := "learning"
		if m.State == "ready" {
			state = "trained" // "ready" is printed once, when the front door accepts requests
		}
		line := fmt.Sprintf("  training %s %s %3d%%  %d/%d calls fed, %d identities seen, model %s", demoAPI, bar(pct), pct, fed, len(recs), m.Identities, state)
		if out.terminal {
			out.printf("\r%s", line)
			return
		}
		if q := pct / 25; q != lastQuarter {
			lastQuarter = q
			out.printf("%s\n", line)
		}
	}
	next := time.Now()
	for i := range recs {
		if err := servers[i%len(servers)].IngestRecord(ctx, &recs[i]); err != nil {
			return fmt.Errorf("pre-training: %w", err)
		}
		if now := time.Now(); now.After(next) || !out.terminal && (i+1)*4/len(recs) != i*4/len(recs) {
			show(i+1, status())
			next = now.Add(100 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		m := status()
		if m.State == "ready" {
			show(len(recs), m)
			if out.terminal {
				out.printf("\n")
			}
			out.printf("Model trained: %d calls and %d identities learned, in %s of wall time.\n", m.Requests, m.Identities, time.Since(started).Round(10*time.Millisecond))
			return demoInspection(ctx, servers, map[string]int{"sample_every": detect.DefaultSampleEvery})
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pre-training: the %s model is still %s after all %d calls (progress %+v)", demoAPI, m.State, len(recs), m.Progress)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// demoSampleEvery sets content inspection's sample_every knob of the demo
// API on every replica (PUT /v1/models/{api}).
// demoInspection sets content inspection's knobs on every replica.
func demoInspection(ctx context.Context, servers []*server.Server, knobs map[string]int) error {
	body := map[string]any{"inspection": knobs}
	for i, s := range servers {
		if err := adminapi.NewClient(s.AdminAddr(), "").Do(ctx, "PUT", adminapi.ModelRoute(demoAPI), body, nil); err != nil {
			return fmt.Errorf("pre-training: replica %d: content inspection's knobs %v: %w", i+1, knobs, err)
		}
	}
	return nil
}

// demoMinIdentities is the identities a replica of n needs before it
// trusts what a parameter carries: inspect's default spread over the
// replicas, at least 2.
func demoMinIdentities(n int) int {
	return max(2, (inspect.DefaultMinIdentities+n-1)/n)
}

func bar(pct int) string {
	n := pct / 5
	return "[" + strings.Repeat("#", n) + strings.Repeat(" ", 20-n) + "]"
}

// demoOutput serialises what the demo prints.
type demoOutput struct {
	mu       sync.Mutex
	w        io.Writer
	terminal bool
}

func (o *demoOutput) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format, args...)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// attackWatcher polls GET /v1/attacks and prints each new attack, named by
// the scripted attack whose addresses it carries.
type attackWatcher struct {
	admin  *adminapi.Client
	out    *demoOutput
	script []*demo.Attack
	start  time.Time

	seen   map[string]bool
	found  map[*demo.Attack][]demo.Detection
	benign []demo.Detection
	other  int
}

func (w *attackWatcher) run(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		w.poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// settle keeps polling until every scripted attack is detected or d has
// passed.
func (w *attackWatcher) settle(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		w.poll(ctx)
		if len(w.found) == len(w.script) {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// prime marks the attacks already on record as seen, once the admin API
// answers.
func (w *attackWatcher) prime(ctx context.Context) {
	deadline := time.Now().Add(10 * time.Second)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if list, ok := w.fetch(ctx); ok {
			for _, a := range list {
				w.seen[a.ID] = true
			}
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (w *attackWatcher) fetch(ctx context.Context) ([]*detect.Attack, bool) {
	if w.seen == nil {
		w.seen, w.found = map[string]bool{}, map[*demo.Attack][]demo.Detection{}
	}
	// Each poll is whole: the end of the live part does not cut one short.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	page, err := w.admin.Attacks(ctx, url.Values{"limit": {"1000"}})
	if err != nil {
		return nil, false
	}
	return page.Attacks, true
}

// unblockScripted removes the block list entries an earlier run left on
// the script's addresses and accounts.
func (w *attackWatcher) unblockScripted(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := w.admin.Entries(ctx, "blocklist")
	if err != nil {
		return
	}
	for _, e := range list.Entries {
		if e.Kind == "ip" && demo.IsScriptIP(e.Value) || e.Kind == "username" && demo.IsScriptUser(e.Value) {
			_ = w.admin.RemoveEntry(ctx, "blocklist", e.Kind, e.Value)
		}
	}
}

func (w *attackWatcher) poll(ctx context.Context) {
	list, ok := w.fetch(ctx)
	if !ok {
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].DetectedAt.Before(list[j].DetectedAt) })
	for _, a := range list {
		if w.seen[a.ID] {
			continue
		}
		w.seen[a.ID] = true
		d := demo.Attribute(a, w.script)
		who := "not scripted"
		switch {
		case d.Script != nil:
			w.found[d.Script] = append(w.found[d.Script], d)
			st := d.Script.Status()
			who = fmt.Sprintf("scripted %s, detected %s after it began", d.Script.Name, a.DetectedAt.Sub(st.Started).Round(100*time.Millisecond))
		case d.Benign:
			w.benign = append(w.benign, d)
			who = "a demo user: a false positive"
		default:
			w.other++
		}
		at := a.DetectedAt.Sub(w.start).Round(100 * time.Millisecond)
		w.out.printf("%7s  DETECTED %-20s %s  (%s)\n         why: %s\n         action: %s\n",
			at, a.Type, demo.Identity(a), who, demo.Explain(a), demo.Action(a))
	}
}

// summary prints what became of each scripted attack and of the benign
// users, and fails when an attack went undetected or a benign user was
// blocked.
func (w *attackWatcher) summary(load demo.LoadStats) error {
	o := w.out
	o.printf("\nSummary: %d benign calls from %d users (%d errors), %d scripted attacks\n", load.Requests, load.Users, load.Errors, len(w.script))
	o.printf("  %-20s %-9s %-38s %-9s %s\n", "attack", "detected", "as", "after", "blocked")
	missed := 0
	for _, a := range w.script {
		st := a.Status()
		ds := w.found[a]
		if len(ds) == 0 {
			missed++
			o.printf("  %-20s %-9s %-38s %-9s %s\n", a.Name, "NO", "-", "-", fmt.Sprintf("(%d calls, %d refused)", st.Requests, st.Refused))
			continue
		}
		kinds := map[detect.AttackType][]string{}
		var types []detect.AttackType
		first := ds[0].Attack.DetectedAt
		for _, d := range ds {
			t := d.Attack.Type
			if _, ok := kinds[t]; !ok {
				types = append(types, t)
			}
			kinds[t] = append(kinds[t], d.Attack.Identity.Kind)
			if d.Attack.DetectedAt.Before(first) {
				first = d.Attack.DetectedAt
			}
		}
		as := make([]string, len(types))
		for i, t := range types {
			as[i] = fmt.Sprintf("%s (%s)", t, strings.Join(kinds[t], ", "))
		}
		blocked := "no"
		if st.Refused > 0 {
			blocked = fmt.Sprintf("yes, %d of %d calls refused", st.Refused, st.Requests)
		}
		o.printf("  %-20s %-9s %-38s %-9s %s\n", a.Name, "yes", strings.Join(as, "; "), first.Sub(st.Started).Round(100*time.Millisecond), blocked)
	}
	users := make([]string, 0, len(load.Refused))
	for u := range load.Refused {
		users = append(users, u)
	}
	sort.Strings(users)
	o.printf("  benign users blocked: %d of %d %s; benign identities flagged: %d\n", len(users), load.Users, strings.Join(users, " "), len(w.benign))
	var problems []string
	if missed > 0 {
		problems = append(problems, fmt.Sprintf("%d scripted attack(s) not detected", missed))
	}
	if len(users) > 0 {
		problems = append(problems, fmt.Sprintf("%d benign user(s) blocked", len(users)))
	}
	if len(problems) > 0 {
		return errors.New("demo: " + strings.Join(problems, ", "))
	}
	o.printf("Every scripted attack was detected and no benign user was blocked.\n")
	return nil
}

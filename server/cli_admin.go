package server

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/observe"
)

// The commands in this file read and change a running Vigil through its
// admin API: aligned tables for people by default, -o json for scripts.

const adminFlagsUsage = `Flags for every command: --admin-addr ADDR (default $VIGIL_ADMIN_ADDR, else
127.0.0.1:9001), -o table|json. VIGIL_ADMIN_TOKEN holds the admin token. Flags
may come before the command (vigil --admin-addr ADDR attacks), before or after
the arguments; put a value that starts with "-" after "--".`

// defaultAdminAddr is the admin API the commands call without
// --admin-addr: VIGIL_ADMIN_ADDR, else the default admin_addr.
func defaultAdminAddr() string {
	if a := os.Getenv("VIGIL_ADMIN_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:9001"
}

const attacksUsage = `Usage:
  vigil attacks [--api A] [--type T] [--since D] [--limit N] [--offset N]
                      detected attacks, newest first; --since is RFC 3339 or a
                      duration back from now such as 15m
  vigil attacks show ID
                      one attack explained: identity, action, variables
` + adminFlagsUsage

const listUsage = `Usage:
  vigil %[1]s add KIND VALUE [--ttl D] [--reason R]
  vigil %[1]s rm KIND VALUE
  vigil %[1]s ls
KIND is ip, token, api_key, cookie or username. A token, API key or cookie may
be given raw: the server keeps and shows only its fingerprint. Without --ttl
the entry never expires.
` + adminFlagsUsage

const statusUsage = `Usage:
  vigil status        readiness, APIs, models in training, attacks in the
                      last hour by type, decoy hits
` + adminFlagsUsage

const apisUsage = `Usage:
  vigil apis          configured and discovered APIs with their traffic
` + adminFlagsUsage

// adminCmd is the part every admin API command shares: its flag set with
// --admin-addr and -o, its usage text and the client.
type adminCmd struct {
	fs     *flag.FlagSet
	addr   *string
	output *string
	usage  string
	stderr io.Writer
	client *adminClient
}

func newAdminCmd(name, usage string, stderr io.Writer) *adminCmd {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &adminCmd{fs: fs, usage: usage, stderr: stderr}
	fs.Usage = func() { fmt.Fprintln(stderr, usage) }
	c.addr = fs.String("admin-addr", defaultAdminAddr(), "admin API address (default $VIGIL_ADMIN_ADDR, else 127.0.0.1:9001)")
	c.output = fs.String("o", "table", "output: table or json")
	return c
}

// parse parses flags wherever they are among the arguments and returns the
// positional arguments. -h gives flag.ErrHelp, after the usage is printed.
func (c *adminCmd) parse(args []string) ([]string, error) {
	pos, err := parseInterleaved(c.fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if *c.output != "table" && *c.output != "json" {
		return nil, c.usageError("-o %q: want table or json", *c.output)
	}
	c.client = newAdminClient(*c.addr)
	return pos, nil
}

// parseNoArgs parses the flags of a command that takes no arguments.
func (c *adminCmd) parseNoArgs(args []string) error {
	pos, err := c.parse(args)
	if err == nil && len(pos) > 0 {
		err = c.usageError("unexpected argument %q", pos[0])
	}
	return err
}

// usageError prints the usage and returns a usage error.
func (c *adminCmd) usageError(format string, args ...any) error {
	fmt.Fprintln(c.stderr, c.usage)
	return fmt.Errorf("%w: %s: %s", ErrUsage, c.fs.Name(), fmt.Sprintf(format, args...))
}

// set reports whether a flag was given.
func (c *adminCmd) set(name string) bool {
	found := false
	c.fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

func (c *adminCmd) json() bool { return *c.output == "json" }

// call calls the admin API. An unreachable server is reported with the
// address and the flag that sets it; shown replaces path in error messages,
// so that a raw credential in the path is never echoed back.
func (c *adminCmd) call(ctx context.Context, method, path, shown string, body []byte, out any) error {
	err := c.client.do(ctx, method, path, body, out)
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// ue.Err, unlike ue itself, does not carry the URL.
		return fmt.Errorf("cannot reach Vigil's admin API at %s (set --admin-addr): %w", *c.addr, ue.Err)
	}
	if shown != path {
		return errors.New(strings.ReplaceAll(err.Error(), path, shown))
	}
	return err
}

// get calls GET path; with -o json it writes the server's answer as it is
// and reports true, otherwise it decodes the answer into out.
func (c *adminCmd) get(ctx context.Context, path string, stdout io.Writer, out any) (bool, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GET", path, path, nil, &raw); err != nil {
		return false, err
	}
	if c.json() {
		return true, writeIndented(stdout, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, fmt.Errorf("GET %s: unexpected answer: %w", path, err)
	}
	return false, nil
}

// helpIsDone turns the -h request into success.
func helpIsDone(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// parseInterleaved parses the flags of fs found anywhere in args and returns
// the other arguments in order: the flag package alone stops at the first
// non-flag. Everything after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		// A flag that takes a value takes the next argument, as fs.Parse will.
		if f := fs.Lookup(name); f != nil && !isBoolFlag(f) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// attacksCmd is vigil attacks and vigil attacks show ID.
func attacksCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAdminCmd("vigil attacks", attacksUsage, stderr)
	api := c.fs.String("api", "", "only attacks on this API")
	typ := c.fs.String("type", "", "only attacks of this type")
	since := c.fs.String("since", "", "only attacks detected since: RFC 3339 or a duration such as 15m")
	limit := c.fs.Int("limit", 100, "at most this many attacks (up to 1000)")
	offset := c.fs.Int("offset", 0, "skip this many of the newest attacks")
	pos, err := c.parse(args)
	if err != nil {
		return helpIsDone(err)
	}
	if len(pos) > 0 && pos[0] == "show" {
		if len(pos) != 2 {
			return c.usageError("show takes one attack ID")
		}
		for _, name := range []string{"api", "type", "since", "limit", "offset"} {
			if c.set(name) {
				return c.usageError("--%s does not apply to show", name)
			}
		}
		return showAttack(ctx, c, pos[1], stdout)
	}
	if len(pos) > 0 {
		return c.usageError("unexpected argument %q", pos[0])
	}
	q := url.Values{}
	for name, v := range map[string]string{"api": *api, "type": *typ, "since": *since} {
		if v != "" {
			q.Set(name, v)
		}
	}
	q.Set("limit", strconv.Itoa(*limit))
	if *offset != 0 {
		q.Set("offset", strconv.Itoa(*offset))
	}
	var page attackPage
	done, err := c.get(ctx, "/v1/attacks?"+q.Encode(), stdout, &page)
	if err != nil || done {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDETECTED\tTYPE\tAPI\tIDENTITY\tACTION\tTOP VARIABLE")
	for _, a := range page.Attacks {
		row(tw, a.ID, fmtTime(a.DetectedAt), string(a.Type), a.API,
			a.Identity.Kind+":"+shortValue(a.Identity.Value), a.Action, topVariable(a.Variables))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case page.Total == 0:
		fmt.Fprintln(stderr, "no attacks match")
	case *offset+len(page.Attacks) < page.Total:
		fmt.Fprintf(stderr, "%d of %d attacks shown; --limit and --offset show more\n", len(page.Attacks), page.Total)
	}
	return nil
}

// attackPage is the answer of GET /v1/attacks.
type attackPage struct {
	Attacks []detect.Attack `json:"attacks"`
	Total   int             `json:"total"`
}

func showAttack(ctx context.Context, c *adminCmd, id string, stdout io.Writer) error {
	var a detect.Attack
	done, err := c.get(ctx, "/v1/attacks/"+url.PathEscape(id), stdout, &a)
	if err != nil || done {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row(tw, "Attack:", a.ID)
	row(tw, "Type:", string(a.Type))
	row(tw, "API:", a.API)
	// The full value: it is what vigil block and vigil allow take.
	row(tw, "Identity:", a.Identity.Kind+" "+a.Identity.Value)
	action := a.Action
	if a.BlockedUntil != nil {
		action += " until " + fmtTime(*a.BlockedUntil)
	}
	row(tw, "Action:", action)
	row(tw, "First seen:", fmtTime(a.FirstSeen))
	row(tw, "Detected:", fmtTime(a.DetectedAt))
	row(tw, "Earlier attacks:", fmt.Sprintf("%d by this identity on this API", a.Repeat))
	if len(a.ClientIPs) > 0 {
		row(tw, "Client IPs:", strings.Join(a.ClientIPs, ", "))
	}
	if r := a.Request; r != nil {
		line := r.Method + " " + r.Host + r.Path
		if r.UserAgent != "" {
			line += fmt.Sprintf(" (user agent %q)", r.UserAgent)
		}
		row(tw, "Request:", line)
	}
	if h := a.Honeytoken; h != nil {
		row(tw, "Honeytoken:", fmt.Sprintf("%s planted by %s at %s (attack %s)", h.Kind, h.MintedOn, fmtTime(h.MintedAt), h.MintedBy))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(a.Variables) == 0 {
		return nil
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tOBSERVED\tTN\tTX\tDEVIATION")
	for _, v := range a.Variables {
		row(tw, v.Name, fmtObserved(v.Name, v.Observed), fmtObserved(v.Name, v.Tn), fmtLimit(v.Name, v.Tx), fmt.Sprintf("%+.0f%%", v.DeviationPct))
	}
	return tw.Flush()
}

// topVariable is the variable that fired (past its Tx) with the largest
// deviation, as "name observed/tx"; when none is past its Tx (an attack
// raised otherwise), the one with the largest deviation. A variable under
// its Tx, however far from its normal, did not raise the attack.
func topVariable(vars []detect.VariableValue) string {
	if len(vars) == 0 {
		return "-"
	}
	top, fired := vars[0], vars[0].Observed > vars[0].Tx
	for _, v := range vars[1:] {
		past := v.Observed > v.Tx
		if past && !fired || past == fired && v.DeviationPct > top.DeviationPct {
			top, fired = v, past
		}
	}
	return top.Name + " " + fmtObserved(top.Name, top.Observed) + "/" + fmtLimit(top.Name, top.Tx)
}

// fmtObserved prints a variable's value: a count (calls, distinct values,
// bytes) as the nearest whole number, since distinct counts are estimates
// with decimals; a ratio or score with up to two decimals.
func fmtObserved(name string, v float64) string {
	if behaviour.CountVariable(name) {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return fmtNum(v)
}

// fmtLimit prints a threshold: for a count, the whole number it stands for
// (a count fires when it is more than Tx, that is more than Tx rounded
// down); a ratio or score with up to two decimals.
func fmtLimit(name string, v float64) string {
	if behaviour.CountVariable(name) {
		return strconv.FormatFloat(math.Floor(v), 'f', 0, 64)
	}
	return fmtNum(v)
}

// shortValue shortens a fingerprint for a table: fp:0123abcd….
func shortValue(v string) string {
	if detect.IsFingerprint(v) {
		return v[:len(detect.FingerprintPrefix)+8] + "…"
	}
	return v
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// fmtNum prints a number with at most two decimals and no exponent.
func fmtNum(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// listCmd is vigil block and vigil allow: verb names the command, list the
// admin API resource.
func listCmd(ctx context.Context, verb, list string, args []string, stdout, stderr io.Writer) error {
	usage := fmt.Sprintf(listUsage, verb)
	c := newAdminCmd("vigil "+verb, usage, stderr)
	ttl := c.fs.String("ttl", "", "add: remove the entry after this duration, such as 30m or 24h")
	reason := c.fs.String("reason", "", "add: why the entry is there (default manual)")
	pos, err := c.parse(args)
	if err != nil {
		return helpIsDone(err)
	}
	if len(pos) == 0 {
		return c.usageError("want add, rm or ls")
	}
	sub := pos[0]
	if sub != "add" {
		for _, name := range []string{"ttl", "reason"} {
			if c.set(name) {
				return c.usageError("--%s only applies to add", name)
			}
		}
	}
	// A list's name for people: "block list".
	listName := strings.TrimSuffix(list, "list") + " list"
	switch sub {
	case "ls":
		if len(pos) != 1 {
			return c.usageError("ls takes no arguments")
		}
		var entries struct {
			Entries []entryJSON `json:"entries"`
		}
		done, err := c.get(ctx, "/v1/"+list, stdout, &entries)
		if err != nil || done {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tVALUE\tREASON\tEXPIRES")
		for _, e := range entries.Entries {
			row(tw, e.Kind, e.Value, e.Reason, fmtExpiry(e.ExpiresAt))
		}
		return tw.Flush()
	case "add":
		if len(pos) != 3 {
			return c.usageError("add takes KIND VALUE")
		}
		body, err := json.Marshal(entryRequest{Kind: pos[1], Value: pos[2], TTL: *ttl, Reason: *reason})
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.call(ctx, "POST", "/v1/"+list, "/v1/"+list, body, &raw); err != nil {
			return err
		}
		if c.json() {
			return writeIndented(stdout, raw)
		}
		var e entryJSON
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("POST /v1/%s: unexpected answer: %w", list, err)
		}
		// The value as the server keeps it: a fingerprint for a credential.
		fmt.Fprintf(stdout, "added to the %s: %s %s, reason %q, expires %s\n", listName, printable(e.Kind), printable(e.Value), e.Reason, fmtExpiry(e.ExpiresAt))
		return nil
	case "rm":
		if len(pos) != 3 {
			return c.usageError("rm takes KIND VALUE")
		}
		kind, value := pos[1], pos[2]
		path := "/v1/" + list + "/" + url.PathEscape(kind) + "/" + url.PathEscape(value)
		shown, display := path, value
		if !showable(kind, value) {
			shown = "/v1/" + list + "/" + url.PathEscape(kind) + "/<value>"
			display = ""
		}
		if err := c.call(ctx, "DELETE", path, shown, nil, nil); err != nil {
			return err
		}
		if c.json() {
			out := map[string]any{"removed": true, "kind": kind}
			if display != "" {
				out["value"] = display
			}
			return writeIndented(stdout, out)
		}
		if display == "" {
			fmt.Fprintf(stdout, "removed the %s entry from the %s\n", printable(kind), listName)
			return nil
		}
		fmt.Fprintf(stdout, "removed %s %s from the %s\n", printable(kind), printable(display), listName)
		return nil
	}
	return c.usageError("unknown command %q: want add, rm or ls", sub)
}

// showable reports whether a list value given by a person may be printed:
// IPs, user names and fingerprints may, a raw credential (or a value of a
// mistyped kind) may not.
func showable(kind, value string) bool {
	k, err := detect.ParseKind(kind)
	return (err == nil && !k.Secret()) || detect.IsFingerprint(value)
}

func fmtExpiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}

// apisCmd is vigil apis.
func apisCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAdminCmd("vigil apis", apisUsage, stderr)
	if err := c.parseNoArgs(args); err != nil {
		return helpIsDone(err)
	}
	var body struct {
		APIs []observe.APIStats `json:"apis"`
	}
	done, err := c.get(ctx, "/v1/apis", stdout, &body)
	if err != nil || done {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBASE PATH\tMODE\tDISCOVERED\tREQUESTS\tBLOCKED\tWOULD BLOCK\tENDPOINTS")
	for _, a := range body.APIs {
		row(tw, a.Name, a.BasePath, a.Mode, yesNo(a.Discovered), strconv.FormatUint(a.Requests, 10),
			strconv.FormatUint(a.Blocked, 10), strconv.FormatUint(a.WouldBlock, 10), strconv.Itoa(len(a.Endpoints)))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// statusReport is what vigil status shows; -o json writes it as it is.
type statusReport struct {
	AdminAddr      string                  `json:"admin_addr"`
	Ready          bool                    `json:"ready"`
	APIs           int                     `json:"apis"`
	DiscoveredAPIs int                     `json:"discovered_apis"`
	Models         []behaviour.ModelStatus `json:"models"`
	// AttacksLastHour counts attacks detected in the last hour.
	AttacksLastHour struct {
		Total  int            `json:"total"`
		ByType map[string]int `json:"by_type"`
	} `json:"attacks_last_hour"`
	Decoys struct {
		Decoys             int   `json:"decoys"`
		Hits               int64 `json:"hits"`
		HoneytokensPlanted int64 `json:"honeytokens_planted"`
	} `json:"decoys"`
}

// statusCmd is vigil status.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAdminCmd("vigil status", statusUsage, stderr)
	if err := c.parseNoArgs(args); err != nil {
		return helpIsDone(err)
	}
	r, err := fetchStatus(ctx, c)
	if err != nil {
		return err
	}
	if c.json() {
		return writeIndented(stdout, r)
	}
	printStatus(stdout, r)
	return nil
}

func fetchStatus(ctx context.Context, c *adminCmd) (*statusReport, error) {
	r := &statusReport{AdminAddr: *c.addr}
	// healthz tells an unreachable server from one that is not ready.
	if err := c.call(ctx, "GET", "/healthz", "/healthz", nil, nil); err != nil {
		return nil, err
	}
	r.Ready = c.call(ctx, "GET", "/readyz", "/readyz", nil, nil) == nil

	var apis struct {
		APIs []observe.APIStats `json:"apis"`
	}
	if err := c.call(ctx, "GET", "/v1/apis", "/v1/apis", nil, &apis); err != nil {
		return nil, err
	}
	r.APIs = len(apis.APIs)
	for _, a := range apis.APIs {
		if a.Discovered {
			r.DiscoveredAPIs++
		}
	}

	var models struct {
		Models []behaviour.ModelStatus `json:"models"`
	}
	if err := c.call(ctx, "GET", "/v1/models", "/v1/models", nil, &models); err != nil {
		return nil, err
	}
	r.Models = models.Models
	if r.Models == nil {
		r.Models = []behaviour.ModelStatus{}
	}

	// Pages of the largest size the server allows, until the total is read.
	r.AttacksLastHour.ByType = map[string]int{}
	const pageSize = 1000
	for offset := 0; ; {
		path := fmt.Sprintf("/v1/attacks?since=1h&limit=%d&offset=%d", pageSize, offset)
		var page attackPage
		if err := c.call(ctx, "GET", path, path, nil, &page); err != nil {
			return nil, err
		}
		if offset == 0 {
			r.AttacksLastHour.Total = page.Total
		}
		for _, a := range page.Attacks {
			r.AttacksLastHour.ByType[string(a.Type)]++
		}
		offset += len(page.Attacks)
		if len(page.Attacks) == 0 || offset >= page.Total {
			break
		}
	}

	var decoys struct {
		Decoys             []decoy.Stats `json:"decoys"`
		HoneytokensPlanted int64         `json:"honeytokens_planted"`
	}
	if err := c.call(ctx, "GET", "/v1/decoys", "/v1/decoys", nil, &decoys); err != nil {
		return nil, err
	}
	r.Decoys.Decoys = len(decoys.Decoys)
	r.Decoys.HoneytokensPlanted = decoys.HoneytokensPlanted
	for _, d := range decoys.Decoys {
		r.Decoys.Hits += d.Hits
	}
	return r, nil
}

func printStatus(w io.Writer, r *statusReport) {
	ready := "ready"
	if !r.Ready {
		ready = "NOT READY"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row(tw, "Vigil at "+r.AdminAddr+":", ready)
	fmt.Fprintf(tw, "APIs:\t%d (%d discovered)\n", r.APIs, r.DiscoveredAPIs)
	fmt.Fprintf(tw, "Attacks in the last hour:\t%d\n", r.AttacksLastHour.Total)
	fmt.Fprintf(tw, "Decoys:\t%d hits on %d decoys, %d honeytokens planted\n", r.Decoys.Hits, r.Decoys.Decoys, r.Decoys.HoneytokensPlanted)
	tw.Flush()

	fmt.Fprintln(w)
	if len(r.Models) == 0 {
		fmt.Fprintln(w, "No models yet: no API has seen traffic.")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MODEL\tSTATE\tPROGRESS\tWAITING ON\tREQUESTS\tIDENTITIES\tWOULD-BE DETECTIONS")
		for _, m := range r.Models {
			p := m.Progress
			var waiting []string
			for _, c := range []struct {
				name string
				frac float64
			}{{"time", p.Duration}, {"requests", p.Requests}, {"identities", p.Identities}} {
				if c.frac < 1 {
					waiting = append(waiting, fmt.Sprintf("%s %s", c.name, pct(c.frac)))
				}
			}
			wait := "-"
			if m.State != "ready" && len(waiting) > 0 {
				wait = strings.Join(waiting, ", ")
			}
			row(tw, m.API, m.State, pct(min(p.Duration, p.Requests, p.Identities)), wait,
				strconv.FormatInt(m.Requests, 10), strconv.FormatInt(m.Identities, 10), strconv.FormatInt(m.WouldBeDetections, 10))
		}
		tw.Flush()
	}

	if r.AttacksLastHour.Total == 0 {
		return
	}
	fmt.Fprintln(w)
	types := make([]string, 0, len(r.AttacksLastHour.ByType))
	for t := range r.AttacksLastHour.ByType {
		types = append(types, t)
	}
	by := r.AttacksLastHour.ByType
	sort.Slice(types, func(i, j int) bool {
		if by[types[i]] != by[types[j]] {
			return by[types[i]] > by[types[j]]
		}
		return types[i] < types[j]
	})
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK TYPE (LAST HOUR)\tCOUNT")
	for _, t := range types {
		row(tw, t, strconv.Itoa(by[t]))
	}
	tw.Flush()
}

// pct prints a fraction from 0 to 1 as a whole percentage, rounded down so
// that 100% means done.
func pct(f float64) string {
	return strconv.Itoa(int(math.Floor(f*100))) + "%"
}

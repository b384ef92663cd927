// Package replay is `vigil replay`'s engine: recorded traffic (transaction
// records or Envoy JSON access log lines) judged by the detection engine
// serve runs, built from the same runtime settings (config.Runtime), on the
// records' clock, with a summary of what it saw and raised.
package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/server/config"
)

// Summary is what a replay saw and raised.
type Summary struct {
	Lines        int
	Transactions int
	Malformed    int
	First, Last  time.Time
	Attacks      map[detect.AttackType]int
	// Actions counts attacks by action (blocked, would_block, detected).
	Actions map[string]int
	// Models are the APIs' training states at the end.
	Models []behaviour.ModelStatus
	// Docs are the APIs' models at the end, as GET /v1/models/{api}
	// answers and vigil model import takes them.
	Docs []*behaviour.ModelDoc
}

// Run runs the detection engine on recorded traffic, with the clock
// taken from the records, and writes each attack as one JSON line to out.
// Each input line is a transaction record (see detect.Record) or an Envoy
// JSON access log line in the format of examples/envoy. A malformed line is
// reported to errs with its line number and skipped.
func Run(ctx context.Context, cfg *config.Config, in io.Reader, out, errs io.Writer) (*Summary, error) {
	rt, err := cfg.Runtime()
	if err != nil {
		return nil, err
	}
	x, err := rt.NewExtractor()
	if err != nil {
		return nil, err
	}
	defer x.Close()
	catalog := rt.Catalog
	sum := &Summary{Attacks: map[detect.AttackType]int{}, Actions: map[string]int{}}
	enc := json.NewEncoder(out)
	var writeErr error
	// The engine serve runs, from the same settings, but inline and in
	// record order, blocking nobody: replay only reports.
	hooks := config.EngineHooks{Inline: true, OnAttack: func(a *detect.Attack) {
		sum.Attacks[a.Type]++
		sum.Actions[a.Action]++
		if writeErr == nil {
			writeErr = enc.Encode(a)
		}
	}}
	engine, err := rt.NewEngine(hooks)
	if err != nil {
		return nil, err
	}
	// Content inspection as serve runs it: records with a request_body
	// have their body inspected too.
	content, contentSink, err := rt.NewContent(hooks, engine.Store())
	if err != nil {
		return nil, err
	}
	// The inventory as serve keeps it, for what it tells the engine: whether
	// a call's route is one the API is known to have.
	inventory := observe.NewInventory(catalog.APIs(), cfg.Discovery.MaxAPIs, cfg.Discovery.MaxEndpointsPerAPI)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		sum.Lines++
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		rec, err := parseReplayLine(line)
		if err != nil {
			sum.Malformed++
			fmt.Fprintf(errs, "line %d: skipped: %v\n", sum.Lines, err)
			continue
		}
		t := rec.Transaction(catalog, x)
		if sum.First.IsZero() || t.Start.Before(sum.First) {
			sum.First = t.Start
		}
		if t.Start.After(sum.Last) {
			sum.Last = t.Start
		}
		sum.Transactions++
		rv := rec.ContentView()
		content.InspectTransaction(t, &rv)
		contentSink.Consume(t)
		inventory.Consume(t)
		engine.Consume(t)
		if writeErr != nil {
			return sum, fmt.Errorf("write attacks: %w", writeErr)
		}
	}
	if err := sc.Err(); err != nil {
		return sum, fmt.Errorf("read input: line %d: %w", sum.Lines+1, err)
	}
	sum.Models = engine.Models()
	for _, m := range sum.Models {
		if doc, ok := engine.Model(m.API); ok {
			sum.Docs = append(sum.Docs, doc)
		}
	}
	return sum, nil
}

// accessLogLine is one line of the Envoy JSON access log shipped in
// examples/envoy/envoy.yaml. Envoy writes numbers as numbers or strings
// depending on its version, so both are taken.
type accessLogLine struct {
	Time      string          `json:"time"`
	Client    string          `json:"client"`
	Method    string          `json:"method"`
	Authority string          `json:"authority"`
	Path      string          `json:"path"`
	UserAgent string          `json:"user_agent"`
	Status    json.RawMessage `json:"status"`
	BytesIn   json.RawMessage `json:"bytes_in"`
	BytesOut  json.RawMessage `json:"bytes_out"`
	Duration  json.RawMessage `json:"duration_ms"`
}

// parseReplayLine reads a transaction record, or an Envoy access log line
// (recognised by its "client" field).
func parseReplayLine(line []byte) (detect.Record, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(line, &probe); err != nil {
		return detect.Record{}, fmt.Errorf("not a JSON object: %v", err)
	}
	if _, ok := probe["client"]; !ok {
		r, err := detect.ParseRecord(line)
		if err != nil {
			return detect.Record{}, err
		}
		return r, checkReplayRecord(&r)
	}
	var l accessLogLine
	if err := json.Unmarshal(line, &l); err != nil {
		return detect.Record{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, l.Time)
	if err != nil {
		return detect.Record{}, fmt.Errorf("time %q is not RFC 3339", l.Time)
	}
	if err := detect.CheckTime(t); err != nil {
		return detect.Record{}, err
	}
	r := detect.Record{Time: t, Method: l.Method, Authority: l.Authority, Path: l.Path, ClientIP: l.Client}
	if l.UserAgent != "" && l.UserAgent != "-" {
		r.RequestHeaders = map[string]string{"user-agent": l.UserAgent}
	}
	var status, in, out int64
	var dur float64
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  any
	}{{"status", l.Status, &status}, {"bytes_in", l.BytesIn, &in}, {"bytes_out", l.BytesOut, &out}, {"duration_ms", l.Duration, &dur}} {
		if err := number(f.raw, f.dst); err != nil {
			return detect.Record{}, fmt.Errorf("%s: %v", f.name, err)
		}
	}
	if status < 0 || status > 999 {
		return detect.Record{}, fmt.Errorf("status %d out of range", status)
	}
	r.Status, r.RequestBytes, r.ResponseBytes, r.DurationMS = int(status), in, out, dur
	if r.Method == "" || r.Path == "" || r.Path[0] != '/' {
		return detect.Record{}, errors.New("access log line without method or path")
	}
	return r, checkReplayRecord(&r)
}

// checkReplayRecord holds both input formats to what a real call can be:
// status 0 (no response: Envoy's code for a reset) or 100..599, byte
// counts and duration not negative, a duration that is a number.
func checkReplayRecord(r *detect.Record) error {
	switch {
	case r.Status != 0 && (r.Status < 100 || r.Status > 599):
		return fmt.Errorf("status %d out of range (0, or 100 to 599)", r.Status)
	case r.RequestBytes < 0:
		return fmt.Errorf("request bytes %d are negative", r.RequestBytes)
	case r.ResponseBytes < 0:
		return fmt.Errorf("response bytes %d are negative", r.ResponseBytes)
	case math.IsNaN(r.DurationMS) || math.IsInf(r.DurationMS, 0) || r.DurationMS < 0:
		return fmt.Errorf("duration %v ms is not a duration", r.DurationMS)
	}
	return nil
}

// number reads a JSON number, or a string holding one ("-" is 0).
func number(raw json.RawMessage, dst any) error {
	s := strings.Trim(string(raw), `"`)
	if s == "" || s == "-" || s == "null" {
		s = "0"
	}
	switch d := dst.(type) {
	case *int64:
		n, err := strconv.ParseInt(s, 10, 64)
		*d = n
		return err
	case *float64:
		n, err := strconv.ParseFloat(s, 64)
		*d = n
		return err
	}
	return errors.New("unsupported")
}

// Table writes the summary as aligned text.
func (s *Summary) Table(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lines\t%d\n", s.Lines)
	fmt.Fprintf(tw, "transactions\t%d\n", s.Transactions)
	fmt.Fprintf(tw, "malformed (skipped)\t%d\n", s.Malformed)
	if !s.First.IsZero() {
		fmt.Fprintf(tw, "traffic time\t%s to %s (%s)\n", s.First.Format(time.RFC3339), s.Last.Format(time.RFC3339), s.Last.Sub(s.First).Round(time.Second))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "API\tSTATE\tREQUESTS\tIDENTITIES\tWOULD-BE DETECTIONS WHILE LEARNING")
	for _, m := range s.Models {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", m.API, m.State, m.Requests, m.Identities, m.WouldBeDetections)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ATTACK TYPE\tCOUNT")
	var types []string
	total := 0
	for t, n := range s.Attacks {
		types = append(types, string(t))
		total += n
	}
	sort.Strings(types)
	for _, t := range types {
		fmt.Fprintf(tw, "%s\t%d\n", t, s.Attacks[detect.AttackType(t)])
	}
	fmt.Fprintf(tw, "total\t%d\n", total)
	tw.Flush()
}

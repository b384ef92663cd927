package cli

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/server/adminapi"
)

const attacksUsage = `Usage:
  vigil attacks [--api A] [--type T] [--since D] [--limit N] [--offset N]
                      detected attacks, newest first; --since is RFC 3339 or a
                      duration back from now such as 15m
  vigil attacks show ID
                      one attack explained: identity, action, variables
` + adminFlagsUsage

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
	var page adminapi.Attacks
	done, err := c.get(ctx, adminapi.Path("/v1/attacks?"+q.Encode()), stdout, &page)
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

func showAttack(ctx context.Context, c *adminCmd, id string, stdout io.Writer) error {
	var a detect.Attack
	done, err := c.get(ctx, adminapi.Path("/v1/attacks/"+url.PathEscape(id)), stdout, &a)
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
	if a.Variables[0].Detector != "" {
		// A content attack: where the value was, what matched, what it was.
		fmt.Fprintln(tw, "LOCATION\tMATCHED\tVALUE")
		for _, v := range a.Variables {
			row(tw, v.Name, v.Detector, strconv.Quote(v.Excerpt))
		}
		return tw.Flush()
	}
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
	if vars[0].Detector != "" {
		return vars[0].Name + " " + vars[0].Detector // a content attack
	}
	top, fired := vars[0], vars[0].Observed > vars[0].Tx
	for _, v := range vars[1:] {
		if behaviour.ContextVariable(v.Name) {
			continue // says how the identity was judged, not what it did
		}
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

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/vigil-project/vigil/server/adminapi"
)

const forensicsUsage = `Usage: vigil forensics KIND VALUE [--admin-addr ADDR] [-o json]
What one identity did: its IPs, methods, endpoints, APIs and attacks. KIND is ip, token, api_key,
cookie or username; VALUE the raw value (fingerprinted by the server) or a fingerprint.`

func forensicsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAdminCmd("vigil forensics", forensicsUsage, stderr)
	pos, err := c.parse(args)
	if err != nil {
		return helpIsDone(err)
	}
	if len(pos) != 2 {
		return c.usageError("want KIND VALUE")
	}
	route := adminapi.ForensicsRoute(pos[0], pos[1])
	var raw json.RawMessage
	if err := c.call(ctx, "GET", route, nil, &raw); err != nil {
		return err
	}
	if done, err := c.printJSON(stdout, raw); done {
		return err
	}
	var f adminapi.Forensics
	if err := json.Unmarshal(raw, &f); err != nil {
		return fmt.Errorf("GET %s: unexpected answer: %w", route.Shown, err)
	}
	fmt.Fprintf(stdout, "%s %s: %s, %d requests, %d attacks", adminapi.Printable(f.Kind), adminapi.Printable(shortValue(f.Value)), adminapi.Printable(f.Status), f.Summary.TotalRequests, f.Summary.TotalAttacks)
	if f.FirstSeen != nil {
		fmt.Fprintf(stdout, ", seen %s to %s", fmtTime(*f.FirstSeen), fmtTime(*f.LastSeen))
	}
	fmt.Fprint(stdout, "\n\n")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tREQUESTS\tMETHODS\tTOP ENDPOINT\tAPIS")
	for _, ip := range f.Details.Metrics.IPList {
		row(tw, ip.IP, strconv.FormatInt(ip.Total, 10), counts(ip.Methods, 4), counts(ip.URLs, 1), counts(ip.APIs, 3))
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tREQUESTS")
	for _, kv := range sorted(f.Details.Metrics.URLs) {
		row(tw, kv.k, strconv.FormatInt(kv.n, 10))
	}
	tw.Flush()
	if len(f.Attacks) > 0 {
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ATTACK\tDETECTED\tTYPE\tAPI\tACTION")
		for _, a := range f.Attacks {
			row(tw, a.ID, fmtTime(a.DetectedAt), string(a.Type), a.API, a.Action)
		}
		tw.Flush()
	}
	return nil
}

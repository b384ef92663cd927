package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/server/adminapi"
)

const listUsage = `Usage:
  vigil %[1]s add KIND VALUE [--ttl D] [--reason R]
  vigil %[1]s rm KIND VALUE
  vigil %[1]s ls
KIND is ip, token, api_key, cookie or username. A token, API key or cookie may
be given raw: the server keeps and shows only its fingerprint. Without --ttl
the entry never expires.
` + adminFlagsUsage

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
		var entries adminapi.Entries
		done, err := c.get(ctx, adminapi.Path("/v1/"+list), stdout, &entries)
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
		body, err := json.Marshal(adminapi.EntryRequest{Kind: pos[1], Value: pos[2], TTL: *ttl, Reason: *reason})
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.call(ctx, "POST", adminapi.Path("/v1/"+list), body, &raw); err != nil {
			return err
		}
		if done, err := c.printJSON(stdout, raw); done {
			return err
		}
		var e adminapi.Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("POST /v1/%s: unexpected answer: %w", list, err)
		}
		// The value as the server keeps it: a fingerprint for a credential.
		fmt.Fprintf(stdout, "added to the %s: %s %s, reason %q, expires %s\n", listName, adminapi.Printable(e.Kind), adminapi.Printable(e.Value), e.Reason, fmtExpiry(e.ExpiresAt))
		return nil
	case "rm":
		if len(pos) != 3 {
			return c.usageError("rm takes KIND VALUE")
		}
		kind, value := pos[1], pos[2]
		display := value
		if !adminapi.Showable(kind, value) {
			display = ""
		}
		if err := c.call(ctx, "DELETE", adminapi.EntryRoute(list, kind, value), nil, nil); err != nil {
			return err
		}
		out := map[string]any{"removed": true, "kind": kind}
		if display != "" {
			out["value"] = display
		}
		if done, err := c.printJSON(stdout, out); done {
			return err
		}
		if display == "" {
			fmt.Fprintf(stdout, "removed the %s entry from the %s\n", adminapi.Printable(kind), listName)
			return nil
		}
		fmt.Fprintf(stdout, "removed %s %s from the %s\n", adminapi.Printable(kind), adminapi.Printable(display), listName)
		return nil
	}
	return c.usageError("unknown command %q: want add, rm or ls", sub)
}

func fmtExpiry(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}

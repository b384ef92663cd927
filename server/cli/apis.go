package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/vigil-project/vigil/server/adminapi"
)

const apisUsage = `Usage:
  vigil apis          configured and discovered APIs with their traffic
` + adminFlagsUsage

// apisCmd is vigil apis.
func apisCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAdminCmd("vigil apis", apisUsage, stderr)
	if err := c.parseNoArgs(args); err != nil {
		return helpIsDone(err)
	}
	var body adminapi.APIs
	done, err := c.get(ctx, adminapi.Path("/v1/apis"), stdout, &body)
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

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vigil-project/vigil/server/adminapi"
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

// adminCmd is the part every admin API command shares: its flag set with
// --admin-addr and -o, its usage text and the client.
type adminCmd struct {
	fs     *flag.FlagSet
	addr   *string
	output *string
	usage  string
	stderr io.Writer
	client *adminapi.Client
}

func newAdminCmd(name, usage string, stderr io.Writer) *adminCmd {
	fs := newFlags(name, "", stderr)
	c := &adminCmd{fs: fs, usage: usage, stderr: stderr}
	fs.Usage = func() { fmt.Fprintln(stderr, usage) } // the usage lists the flags
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
	c.client = adminapi.NewClient(*c.addr, os.Getenv("VIGIL_ADMIN_TOKEN"))
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

// printJSON is the one switch of the output format: with -o json it
// writes v (the server's answer as it is, or what the command reports) as
// indented JSON and reports true; with -o table it writes nothing, and the
// command prints its table.
func (c *adminCmd) printJSON(stdout io.Writer, v any) (bool, error) {
	if *c.output != "json" {
		return false, nil
	}
	return true, writeIndented(stdout, v)
}

// call calls the admin API. An unreachable server is reported with the
// address and the flag that sets it; messages show the route's Shown, so
// that a raw credential in the path is never echoed back.
func (c *adminCmd) call(ctx context.Context, method string, r adminapi.Route, body, out any) error {
	err := c.client.Do(ctx, method, r, body, out)
	var ue *adminapi.UnreachableError
	if errors.As(err, &ue) {
		return fmt.Errorf("cannot reach Vigil's admin API at %s (set --admin-addr): %w", ue.Addr, ue.Err)
	}
	return err
}

// get calls GET; with -o json it writes the server's answer as it is and
// reports true, otherwise it decodes the answer into out.
func (c *adminCmd) get(ctx context.Context, r adminapi.Route, stdout io.Writer, out any) (bool, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GET", r, nil, &raw); err != nil {
		return false, err
	}
	if done, err := c.printJSON(stdout, raw); done {
		return true, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return false, fmt.Errorf("GET %s: unexpected answer: %w", r.Shown, err)
	}
	return false, nil
}

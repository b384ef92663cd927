package server

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/detect"
)

// adminClient calls a running Vigil's admin API for the CLI.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func newAdminClient(addr string) *adminClient {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &adminClient{base: strings.TrimRight(addr, "/"), token: os.Getenv("VIGIL_ADMIN_TOKEN"), http: &http.Client{Timeout: 30 * time.Second}}
}

// do sends a request and decodes a JSON answer into out; an error answer
// becomes an error carrying the server's message.
func (c *adminClient) do(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s (%d)", method, path, e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = data
		return nil
	}
	return json.Unmarshal(data, out)
}

const modelUsage = `Usage:
  vigil model get API                 training state and thresholds
  vigil model set API [--type T [--enable|--disable] [--sensitivity S]] [--var NAME --kind KIND (--tn N --tx N | --system)]
  vigil model export API [--out FILE] versioned JSON, for import elsewhere
  vigil model import FILE [--api API] install an exported model
Flags for every command: --admin-addr ADDR (default 127.0.0.1:9001), -o json; VIGIL_ADMIN_TOKEN holds the admin token.`

func modelCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprintln(stderr, modelUsage)
		return ErrUsage
	}
	sub, target := args[0], args[1]
	fs := flag.NewFlagSet("vigil model "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin-addr", "127.0.0.1:9001", "admin API address")
	output := fs.String("o", "table", "output: table or json")
	outPath := fs.String("out", "", "export: file to write (default stdout)")
	api := fs.String("api", "", "import: API to install the model on (default: the one in the file)")
	typ := fs.String("type", "", "set: attack type")
	enable := fs.Bool("enable", false, "set: enable the attack type")
	disable := fs.Bool("disable", false, "set: disable the attack type")
	sens := fs.Float64("sensitivity", 0, "set: sensitivity of the attack type (>1 detects more)")
	varName := fs.String("var", "", "set: variable name")
	kind := fs.String("kind", "", "set: identity kind of the variable")
	tn := fs.Float64("tn", -1, "set: user Tn")
	tx := fs.Float64("tx", -1, "set: user Tx")
	system := fs.Bool("system", false, "set: give the variable back to learning")
	if err := fs.Parse(args[2:]); err != nil {
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	c := newAdminClient(*addr)
	switch sub {
	case "get":
		var doc detect.ModelDoc
		if err := c.do(ctx, "GET", "/v1/models/"+url.PathEscape(target), nil, &doc); err != nil {
			return err
		}
		if *output == "json" {
			return writeIndented(stdout, doc)
		}
		printModel(stdout, &doc)
		return nil
	case "export":
		var raw json.RawMessage
		if err := c.do(ctx, "GET", "/v1/models/"+url.PathEscape(target), nil, &raw); err != nil {
			return err
		}
		if *outPath == "" {
			_, err := stdout.Write(raw)
			return err
		}
		return os.WriteFile(*outPath, raw, 0o644)
	case "import":
		data, err := os.ReadFile(target)
		if err != nil {
			return fmt.Errorf("model file: %w", err)
		}
		var doc detect.ModelDoc
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("model file %s: %w", target, err)
		}
		if *api != "" {
			doc.API = *api
		}
		if doc.API == "" {
			return fmt.Errorf("%w: the model file names no API; pass --api", ErrUsage)
		}
		var out detect.ModelDoc
		if err := c.do(ctx, "POST", "/v1/models/"+url.PathEscape(doc.API)+"/import", data, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported model of %s (%d variables)\n", printable(out.API), len(out.Variables))
		return nil
	case "set":
		u := detect.ModelUpdate{Types: map[detect.AttackType]detect.TypeKnobsUpdate{}}
		if *typ != "" {
			k := detect.TypeKnobsUpdate{}
			if *enable || *disable {
				e := *enable
				k.Enabled = &e
			}
			if *sens > 0 {
				k.Sensitivity = sens
			}
			u.Types[detect.AttackType(*typ)] = k
		}
		if *varName != "" {
			vu := detect.VariableUpdate{Name: *varName, Kind: *kind, Mode: "user"}
			if *system {
				vu.Mode = "system"
			} else {
				if *tn < 0 || *tx < 0 {
					return fmt.Errorf("%w: --var needs --tn and --tx, or --system", ErrUsage)
				}
				vu.Tn, vu.Tx = tn, tx
			}
			u.Variables = append(u.Variables, vu)
		}
		if len(u.Types) == 0 && len(u.Variables) == 0 {
			return fmt.Errorf("%w: nothing to set; see vigil model", ErrUsage)
		}
		body, _ := json.Marshal(u)
		var doc detect.ModelDoc
		if err := c.do(ctx, "PUT", "/v1/models/"+url.PathEscape(target), body, &doc); err != nil {
			return err
		}
		if *output == "json" {
			return writeIndented(stdout, doc)
		}
		printModel(stdout, &doc)
		return nil
	}
	fmt.Fprintln(stderr, modelUsage)
	return fmt.Errorf("%w: unknown model command %q", ErrUsage, sub)
}

func writeIndented(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printModel(w io.Writer, doc *detect.ModelDoc) {
	if st := doc.Status; st != nil {
		fmt.Fprintf(w, "API %s: %s, %d requests, %d identities, %d would-be detections while learning\n\n",
			printable(doc.API), printable(st.State), st.Requests, st.Identities, st.WouldBeDetections)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tENABLED\tSENSITIVITY")
	for _, t := range detect.AttackTypes() {
		k := doc.Types[t]
		row(tw, string(t), strconv.FormatBool(k.Enabled), strconv.FormatFloat(k.Sensitivity, 'g', -1, 64))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tTYPE\tKIND\tMODE\tTN\tTX\tSAMPLES")
	for _, v := range doc.Variables {
		row(tw, v.Name, string(v.Type), v.Kind, v.Mode, strconv.FormatFloat(v.Tn, 'g', -1, 64), strconv.FormatFloat(v.Tx, 'g', -1, 64), strconv.FormatInt(v.Samples, 10))
	}
	tw.Flush()
}

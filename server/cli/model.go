package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/server/adminapi"
)

const modelUsage = `Usage:
  vigil model get API                 training state and thresholds
  vigil model set API [--type T [--enable|--disable] [--sensitivity S]] [--var NAME --kind KIND [--endpoint "METHOD /template"] (--tn N --tx N | --system)]
  vigil model export API [--out FILE] versioned JSON, for import elsewhere
  vigil model import FILE [--api API] install an exported model
` + adminFlagsUsage

func modelCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := newAdminCmd("vigil model", modelUsage, stderr)
	outPath := c.fs.String("out", "", "export: file to write (default stdout)")
	api := c.fs.String("api", "", "import: API to install the model on (default: the one in the file)")
	typ := c.fs.String("type", "", "set: attack type")
	enable := c.fs.Bool("enable", false, "set: enable the attack type")
	disable := c.fs.Bool("disable", false, "set: disable the attack type")
	sens := c.fs.Float64("sensitivity", 0, "set: sensitivity of the attack type, from 0.01 to 100 (>1 detects more)")
	varName := c.fs.String("var", "", "set: variable name")
	kind := c.fs.String("kind", "", "set: population of the variable: an identity kind, ip_shared, network or <kind>_on_shared_ip (endpoint for request_bytes_endpoint)")
	endpoint := c.fs.String("endpoint", "", `set: request_bytes_endpoint's endpoint, "METHOD /template" as the model lists it`)
	tn := c.fs.Float64("tn", 0, "set: user Tn")
	tx := c.fs.Float64("tx", 0, "set: user Tx")
	system := c.fs.Bool("system", false, "set: give the variable back to learning")
	pos, err := c.parse(args)
	if err != nil {
		return helpIsDone(err)
	}
	if len(pos) != 2 {
		if len(pos) == 0 {
			return c.usageError("want get, set, export or import")
		}
		return c.usageError("%s takes one argument", pos[0])
	}
	sub, target := pos[0], pos[1]
	switch sub {
	case "get":
		var doc behaviour.ModelDoc
		done, err := c.get(ctx, adminapi.ModelRoute(target), stdout, &doc)
		if err != nil || done {
			return err
		}
		printModel(stdout, &doc)
		return nil
	case "export":
		route := adminapi.ModelRoute(target)
		path := route.Path
		var raw json.RawMessage
		if err := c.call(ctx, "GET", route, nil, &raw); err != nil {
			return err
		}
		// Only a whole model is written: an empty or broken answer is an
		// error, not an empty file that import would refuse much later.
		var doc behaviour.ModelDoc
		if err := json.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("GET %s: the answer is not a model document (%d bytes): %v", path, len(raw), err)
		}
		if err := doc.Validate(); err != nil || doc.API == "" {
			return fmt.Errorf("GET %s: the answer is not a valid model document: %v", path, cmp.Or(err, errors.New("no api")))
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
		var doc behaviour.ModelDoc
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("model file %s: %w", target, err)
		}
		if *api != "" {
			doc.API = *api
		}
		if doc.API == "" {
			return c.usageError("the model file names no API; pass --api")
		}
		route := adminapi.ModelRoute(doc.API)
		route.Path += "/import"
		route.Shown = route.Path
		var out behaviour.ModelDoc
		if err := c.call(ctx, "POST", route, data, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "imported model of %s (%d variables)\n", adminapi.Printable(out.API), len(out.Variables))
		return nil
	case "set":
		u := behaviour.ModelUpdate{Types: map[detect.AttackType]behaviour.TypeKnobsUpdate{}}
		if *typ != "" {
			k := behaviour.TypeKnobsUpdate{}
			if *enable || *disable {
				e := *enable
				k.Enabled = &e
			}
			if c.set("sensitivity") {
				k.Sensitivity = sens
			}
			u.Types[detect.AttackType(*typ)] = k
		}
		if *varName != "" {
			vu := behaviour.VariableUpdate{Name: *varName, Kind: *kind, Endpoint: *endpoint, Mode: "user"}
			if *system {
				vu.Mode = "system"
			} else {
				if !c.set("tn") || !c.set("tx") {
					return c.usageError("--var needs --tn and --tx, or --system")
				}
				vu.Tn, vu.Tx = tn, tx
			}
			u.Variables = append(u.Variables, vu)
		}
		if len(u.Types) == 0 && len(u.Variables) == 0 {
			return c.usageError("nothing to set")
		}
		body, err := json.Marshal(u)
		if err != nil {
			return err
		}
		route := adminapi.ModelRoute(target)
		path := route.Path
		var raw json.RawMessage
		if err := c.call(ctx, "PUT", route, body, &raw); err != nil {
			return err
		}
		if done, err := c.printJSON(stdout, raw); done {
			return err
		}
		var doc behaviour.ModelDoc
		if err := json.Unmarshal(raw, &doc); err != nil {
			return fmt.Errorf("PUT %s: unexpected answer: %w", path, err)
		}
		printModel(stdout, &doc)
		return nil
	}
	return c.usageError("unknown model command %q", sub)
}

func printModel(w io.Writer, doc *behaviour.ModelDoc) {
	if st := doc.Status; st != nil {
		fmt.Fprintf(w, "API %s: %s, %d requests, %d identities, %d would-be detections while learning\n\n",
			adminapi.Printable(doc.API), adminapi.Printable(st.State), st.Requests, st.Identities, st.WouldBeDetections)
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
		kind := v.Kind
		if v.Endpoint != "" {
			kind += " " + v.Endpoint
		}
		row(tw, v.Name, string(v.Type), kind, v.Mode, strconv.FormatFloat(v.Tn, 'g', -1, 64), strconv.FormatFloat(v.Tx, 'g', -1, 64), strconv.FormatInt(v.Samples, 10))
	}
	tw.Flush()
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/server/adminapi"
)

const statusUsage = `Usage:
  vigil status        readiness, APIs, models in training, attacks in the
                      last hour by type, decoy hits; with Redis, the
                      cluster: live replicas, trainer, Redis up or
                      degraded since when, list writes waiting, last
                      flush, propagation lag
` + adminFlagsUsage

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
	// Cluster is the server's view of the replicas sharing Redis; absent
	// without Redis.
	Cluster *adminapi.ClusterStatus `json:"cluster,omitempty"`
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
	if done, err := c.printJSON(stdout, r); done {
		return err
	}
	printStatus(stdout, r)
	return nil
}

func fetchStatus(ctx context.Context, c *adminCmd) (*statusReport, error) {
	r := &statusReport{AdminAddr: *c.addr}
	// healthz tells an unreachable server from one that is not ready.
	if err := c.call(ctx, "GET", adminapi.Path("/healthz"), nil, nil); err != nil {
		return nil, err
	}
	r.Ready = c.call(ctx, "GET", adminapi.Path("/readyz"), nil, nil) == nil

	var st adminapi.ServerStatus
	var se *adminapi.StatusError
	switch err := c.call(ctx, "GET", adminapi.Path("/v1/status"), nil, &st); {
	case errors.As(err, &se) && se.Code == http.StatusNotFound: // a server older than the route
	case err != nil:
		return nil, err
	default:
		r.Cluster = st.Cluster
	}

	var apis adminapi.APIs
	if err := c.call(ctx, "GET", adminapi.Path("/v1/apis"), nil, &apis); err != nil {
		return nil, err
	}
	r.APIs = len(apis.APIs)
	for _, a := range apis.APIs {
		if a.Discovered {
			r.DiscoveredAPIs++
		}
	}

	var models adminapi.Models
	if err := c.call(ctx, "GET", adminapi.Path("/v1/models"), nil, &models); err != nil {
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
		var page adminapi.Attacks
		if err := c.call(ctx, "GET", adminapi.Path(fmt.Sprintf("/v1/attacks?since=1h&limit=%d&offset=%d", pageSize, offset)), nil, &page); err != nil {
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

	var decoys adminapi.Decoys
	if err := c.call(ctx, "GET", adminapi.Path("/v1/decoys"), nil, &decoys); err != nil {
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
	if c := r.Cluster; c != nil {
		trainer := ""
		if c.Trainer {
			trainer = " (the trainer)"
		}
		row(tw, "Cluster:", fmt.Sprintf("%d live replicas; this one %s%s", c.Replicas, c.ReplicaID, trainer))
		redis := "up"
		if !c.RedisUp {
			redis = "DOWN"
		}
		if c.Mode != "" {
			redis += " (" + c.Mode + ")"
		}
		if c.Degraded {
			redis += ", DEGRADED"
			if !c.DegradedSince.IsZero() {
				redis += fmt.Sprintf(" since %s (%s ago)", c.DegradedSince.UTC().Format(time.RFC3339), ago(c.DegradedSince))
			}
			redis += ": serving and detecting on local state"
		}
		row(tw, "Redis:", redis)
		if c.SharingStopped != "" {
			row(tw, "Sharing:", "STOPPED: "+c.SharingStopped)
		}
		row(tw, "Outbox:", fmt.Sprintf("%d list writes waiting for Redis", c.Outbox))
		flush := "none yet"
		if !c.LastFlush.IsZero() {
			flush = fmt.Sprintf("last at %s (%s ago)", c.LastFlush.UTC().Format(time.RFC3339), ago(c.LastFlush))
		}
		row(tw, "Flush:", flush)
		lag := "no change of another replica yet"
		if c.PropagationLagSeconds > 0 {
			lag = fmt.Sprintf("%s for the last change of another replica", time.Duration(c.PropagationLagSeconds*float64(time.Second)).Round(time.Microsecond))
		}
		row(tw, "Propagation:", lag)
	}
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

// ago is how long ago t was, to the second, never negative (the server's
// clock may run ahead of this one).
func ago(t time.Time) time.Duration {
	return max(0, time.Since(t)).Truncate(time.Second)
}

package server

import (
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/vigil-project/vigil/decoy"
	"github.com/vigil-project/vigil/detect"
	"github.com/vigil-project/vigil/detect/behaviour"
	"github.com/vigil-project/vigil/detect/observe"
	"github.com/vigil-project/vigil/server/config"
)

// newTrap builds the configuration's decoys. A decoy that would trap a real
// client (a login path, another API's paths, an API's base path) is an
// error; one that traffic later shows to be real is disabled and logged.
func newTrap(cfg *config.Config, catalog *detect.Catalog, fp *detect.Fingerprinter, engine *behaviour.Engine, block *detect.List, inv *observe.Inventory, log zerolog.Logger, now func() time.Time) (*decoy.Trap, error) {
	dc := decoy.Config{Builtin: cfg.DecoyBuiltin, TTL: cfg.DecoyTTL,
		RealEndpoint: func(api *detect.API, path string) bool { return inv.Succeeded(api.Name, path) }}
	for _, a := range cfg.APIs {
		if api, ok := catalog.Lookup(a.Name); ok {
			dc.APIs = append(dc.APIs, decoy.APIDecoys{API: api, Paths: a.Decoys})
		}
	}
	for _, d := range cfg.DecoyAPIs {
		da := decoy.DecoyAPI{Name: d.Name, Hosts: d.Hosts, BasePath: config.NormalizeBasePath(d.BasePath), Delay: d.Delay}
		if r := d.Response; r != nil {
			ans := &decoy.Answer{Status: r.Status, Body: []byte(r.Body)}
			for k, v := range r.Headers {
				ans.Headers = append(ans.Headers, [2]string{strings.ToLower(k), v})
			}
			da.Response = ans
		}
		dc.DecoyAPIs = append(dc.DecoyAPIs, da)
	}
	dlog := log.With().Str("component", "decoy").Logger()
	blockDurably := func(e detect.Entry) {
		if err := block.Store(e); err != nil {
			dlog.Error().Err(err).Str("kind", e.Kind.String()).Msg("block list entry not stored durably")
		}
	}
	trap, err := decoy.New(dc, fp, decoy.Actions{Block: blockDurably, Report: engine.Report, AttackID: engine.NewAttackID, Now: now})
	if err != nil {
		return nil, err
	}
	trap.OnReal = func(api, path string, status int) {
		dlog.Error().Str("api", api).Str("path", path).Int("status", status).
			Msg("a decoy is a real endpoint: the back end answered it with success; the decoy is disabled so that it never traps a real client")
	}
	return trap, nil
}

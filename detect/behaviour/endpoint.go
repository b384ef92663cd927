package behaviour

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/vigil-project/vigil/detect"
)

// Request sizes per endpoint. request_bytes judges a call's body against
// what its population sends anywhere on the API: where one endpoint takes
// bulk uploads, its Tx (twice the largest body, 8 KiB at least) stands far
// above what a small update takes, and a body twice the largest an update
// endpoint ever took passes. request_bytes_endpoint judges a body against
// its endpoint (method and template): Tx is 1.5 × the largest of a uniform
// sample of the bodies it took from identities not flagged (the sample's
// 99.9th percentile), at least endpointFloor, once it took
// endpointMinSamples of them. Only calls with a body and a status under
// 400 train it, so a scanner's paths never become endpoints; an API's
// model learns at most maxEndpoints of them (the first seen), the rest
// are judged by request_bytes alone. A person sets an endpoint's Tn/Tx as
// any variable's: kind "endpoint" and the endpoint ("PATCH
// /shop/order/{id}"); an attack's explanation names it in the variable's
// location.

const (
	endpointKind       = "endpoint"
	endpointFloor      = 128
	endpointMinSamples = 200
	maxEndpoints       = 256
	// endpointReservoir is the sample kept per endpoint: 512 bytes, so
	// that an API's endpoints hold 128 KiB at most.
	endpointReservoir = 128
)

// endpointLearner is one endpoint's sample of request sizes.
type endpointLearner struct {
	name string // "PATCH /shop/order/{id}"
	r    reservoir
}

// endpointThreshold is one endpoint's thresholds, as the workers read them.
type endpointThreshold struct {
	name string
	threshold
}

type endpointThresholds map[uint64]endpointThreshold

// endpointName is what people and the explanation call a call's endpoint.
func endpointName(t *detect.Transaction) string { return t.Method + " " + t.Template }

// sampleEndpointLocked adds a body's size to its endpoint's sample, making
// the learner while the model has fewer than maxEndpoints. Call with m.mu
// held.
func (m *apiModel) sampleEndpointLocked(key uint64, t *detect.Transaction) {
	l := m.endpoints[key]
	if l == nil {
		if len(m.endpoints) >= maxEndpoints {
			return
		}
		if m.endpoints == nil {
			m.endpoints = map[uint64]*endpointLearner{}
		}
		l = &endpointLearner{name: endpointName(t), r: reservoir{size: endpointReservoir, rng: key | 1}}
		m.endpoints[key] = l
	}
	l.r.add(float64(t.RequestBytes))
}

// computeEndpoints derives the endpoints' thresholds: learned from their
// samples (not on a replica that is not the trainer), else the imported
// or trainer's base, and a person's where set. Call with m.mu held.
func (m *apiModel) computeEndpoints() endpointThresholds {
	out := endpointThresholds{}
	own := m.training()
	for key, l := range m.endpoints {
		if !own || l.r.seen < endpointMinSamples {
			continue
		}
		q99, q999 := l.r.quantile(0.99), l.r.quantile(0.999)
		out[key] = endpointThreshold{l.name, threshold{Tn: q99, Tx: max(endpointFloor, 1.5*q999)}}
	}
	for _, src := range []struct {
		set  map[userKey]UserThreshold
		user bool
	}{{m.base, false}, {m.user, true}} {
		for k, u := range src.set {
			if k.v != vEndpointBytes {
				continue
			}
			key := endpointKey(k.ep)
			if _, learned := out[key]; learned && !src.user {
				continue // learned here: the base gives way
			}
			out[key] = endpointThreshold{k.ep, threshold{Tn: u.Tn, Tx: u.Tx, User: src.user}}
		}
	}
	return out
}

// endpointKey is the key of an endpoint named as endpointName does (what
// routeKey hashes).
func endpointKey(name string) uint64 {
	method, template, _ := cutEndpoint(name)
	return routeKey(method, template)
}

// cutEndpoint splits "METHOD /template".
func cutEndpoint(name string) (method, template string, ok bool) {
	method, template, ok = strings.Cut(name, " ")
	return method, template, ok && method != "" && strings.HasPrefix(template, "/")
}

// judgeEndpoint reports the endpoint variable of a call with a body: its
// value, thresholds and whether it is past Tx (divided by the
// sensitivity); ok is false where the endpoint has no thresholds.
func (m *apiModel) judgeEndpoint(key uint64, t *detect.Transaction, knobs *[numTypes]TypeKnobs) (v detect.VariableValue, fires, ok bool) {
	eps := m.epThresholds.Load()
	if eps == nil {
		return v, false, false
	}
	e, ok := (*eps)[key]
	if !ok {
		return v, false, false
	}
	sens := knobs[varType[vEndpointBytes]].Sensitivity
	if sens <= 0 {
		sens = 1
	}
	x, tx := float64(t.RequestBytes), e.Tx/sens
	v = detect.VariableValue{Name: varDefs[vEndpointBytes].name, Observed: x, Tn: round(e.Tn), Tx: round(tx),
		DeviationPct: deviation(vEndpointBytes, x, e.Tn), Location: e.name}
	return v, x > tx, true
}

// endpointDocs lists the endpoints' thresholds for the model document,
// by name. Call with m.mu held.
func (m *apiModel) endpointDocs() []VariableDoc {
	eps := m.epThresholds.Load()
	if eps == nil {
		return nil
	}
	out := make([]VariableDoc, 0, len(*eps))
	for key, e := range *eps {
		vd := VariableDoc{Name: varDefs[vEndpointBytes].name, Type: detect.AttackOversizedPayload, Kind: endpointKind,
			Endpoint: e.name, Mode: "system", Tn: round(e.Tn), Tx: round(e.Tx)}
		if e.User {
			vd.Mode = "user"
		}
		if l := m.endpoints[key]; l != nil {
			vd.Samples = l.r.seen
		}
		out = append(out, vd)
	}
	slices.SortFunc(out, func(a, b VariableDoc) int { return cmp.Compare(a.Endpoint, b.Endpoint) })
	return out
}

// variableKey is the key of variable v's thresholds for kind (a
// population) or, for request_bytes_endpoint, for the endpoint (kind
// "endpoint"); the problems name field.
func variableKey(field string, v varID, kind, endpoint string) (userKey, []string) {
	if v == vEndpointBytes {
		if kind != endpointKind {
			return userKey{}, []string{fmt.Sprintf("%s.kind: %q (%s wants kind %q and an endpoint)", field, kind, varDefs[v].name, endpointKind)}
		}
		return userKey{v: v, ep: endpoint}, checkEndpoint(field, endpoint)
	}
	k, err := parsePop(kind)
	if err != nil || !applies(v, k) {
		return userKey{}, []string{fmt.Sprintf("%s.kind: %q does not apply to %s", field, kind, varDefs[v].name)}
	}
	return userKey{k, v, ""}, nil
}

// checkEndpoint reports a bad endpoint name of the variable at field.
func checkEndpoint(field, name string) []string {
	if _, _, ok := cutEndpoint(name); ok && len(name) <= maxEndpointName {
		return nil
	}
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return []string{fmt.Sprintf(`%s.endpoint: %q (want "METHOD /template", at most %d bytes)`, field, name, maxEndpointName)}
}

// maxEndpointName bounds an endpoint's name in a model update.
const maxEndpointName = 1024

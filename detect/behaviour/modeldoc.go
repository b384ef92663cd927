package behaviour

import (
	"errors"
	"fmt"
	"github.com/vigil-project/vigil/detect"
	"math"
	"sort"
	"strings"
)

// ModelVersion is the version of the model document format.
const ModelVersion = 1

// ModelDoc is an API model as people and tools see it: training status,
// knobs per attack type, and Tn/Tx per variable and identity kind. It is
// what GET /v1/models/{api} answers and what `vigil model export` writes;
// `vigil model import` installs one on another deployment.
type ModelDoc struct {
	Version   int                             `json:"version"`
	API       string                          `json:"api"`
	Status    *ModelStatus                    `json:"status,omitempty"`
	Types     map[detect.AttackType]TypeKnobs `json:"types"`
	Variables []VariableDoc                   `json:"variables"`
}

// VariableDoc is one variable's thresholds for one identity kind (for
// request_bytes_endpoint, kind "endpoint" and the endpoint). Mode is
// "system" (learned) or "user" (set by a person, kept across relearning).
type VariableDoc struct {
	Name     string            `json:"name"`
	Type     detect.AttackType `json:"type"`
	Kind     string            `json:"kind"`
	Endpoint string            `json:"endpoint,omitempty"`
	Mode     string            `json:"mode"`
	Tn       float64           `json:"tn"`
	Tx       float64           `json:"tx"`
	Samples  int64             `json:"samples"`
}

// ModelUpdate changes knobs and thresholds; absent fields keep their value.
type ModelUpdate struct {
	Types     map[detect.AttackType]TypeKnobsUpdate `json:"types" yaml:"types"`
	Variables []VariableUpdate                      `json:"variables" yaml:"variables"`
}

// TypeKnobsUpdate changes one attack type's knobs.
type TypeKnobsUpdate struct {
	Enabled     *bool    `json:"enabled" yaml:"enabled"`
	Sensitivity *float64 `json:"sensitivity" yaml:"sensitivity"`
}

// VariableUpdate sets a variable's thresholds for one kind (mode "user"),
// or gives them back to learning (mode "system"); request_bytes_endpoint's
// for one endpoint (kind "endpoint").
type VariableUpdate struct {
	Name     string   `json:"name" yaml:"name"`
	Kind     string   `json:"kind" yaml:"kind"`
	Endpoint string   `json:"endpoint,omitempty" yaml:"endpoint,omitempty"`
	Mode     string   `json:"mode" yaml:"mode"`
	Tn       *float64 `json:"tn" yaml:"tn"`
	Tx       *float64 `json:"tx" yaml:"tx"`
}

func varByName(name string) (varID, bool) {
	for v := range numVars {
		if varDefs[v].name == name {
			return varID(v), true
		}
	}
	return 0, false
}

// CountVariable reports whether a variable counts something (calls,
// errors, distinct values, bytes, elements), so that people are shown it as
// a whole number; the ratios (errors, unknown routes, the self-baselines)
// and the anomaly score are fractions. Distinct counts are estimated and
// so carry decimals in attack records.
func CountVariable(name string) bool {
	v, ok := varByName(name)
	switch v {
	case vErrorRatio, vErrorRatioHour, vDeleteRatioHour, vUnknownShare, vSelfRequests, vSelfErrors, vSelfBytes:
		return false
	}
	return ok
}

// VariableNames lists the variables, for messages.
func VariableNames() []string {
	out := make([]string, numVars)
	for v := range numVars {
		out[v] = varDefs[v].name
	}
	return out
}

// Model returns the document of an API's model.
func (e *Engine) Model(api string) (*ModelDoc, bool) {
	e.mu.RLock()
	m := e.models[api]
	e.mu.RUnlock()
	if m == nil {
		return nil, false
	}
	st := m.status()
	doc := &ModelDoc{Version: ModelVersion, API: m.name, Status: &st, Types: map[detect.AttackType]TypeKnobs{}}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, t := range allTypes() {
		doc.Types[t] = m.knobs[i]
	}
	ts := m.thresholds.Load()
	for v := range numVars {
		d := varDefs[v]
		for k := range pop(numPops) {
			if !applies(v, k) {
				continue
			}
			th := ts[k][v]
			vd := VariableDoc{Name: d.name, Type: d.attack, Kind: k.String(), Mode: "system", Tn: round(th.Tn), Tx: round(th.Tx)}
			if th.User {
				vd.Mode = "user"
			}
			if r := m.samples[k][v]; r != nil {
				vd.Samples = r.seen
			}
			doc.Variables = append(doc.Variables, vd)
		}
	}
	doc.Variables = append(doc.Variables, m.endpointDocs()...)
	return doc, true
}

// The ranges of the numbers in a model. Every threshold and sensitivity
// is finite and bounded, so that no computation from them (Tx divided by
// the sensitivity, a relaxed Tx of half again an observed value, rounding)
// can overflow into an infinity, which no model document could hold.
const (
	// MaxThreshold bounds Tn and Tx: a terabyte of responses in ten
	// minutes, far above anything a variable measures.
	MaxThreshold = 1e12
	// MinSensitivity and MaxSensitivity bound an attack type's sensitivity.
	MinSensitivity = 0.01
	MaxSensitivity = 100
)

// checkSensitivity reports a sensitivity out of range, naming the field.
func checkSensitivity(field string, s float64) []string {
	if math.IsNaN(s) || s < MinSensitivity || s > MaxSensitivity {
		return []string{fmt.Sprintf("%s: %v must be from %g to %g", field, s, float64(MinSensitivity), float64(MaxSensitivity))}
	}
	return nil
}

// checkThresholds reports a Tn or Tx out of range, naming the fields
// (prefix.tn, prefix.tx): 0 ≤ tn ≤ tx, 0 < tx ≤ MaxThreshold.
func checkThresholds(prefix string, tn, tx float64) []string {
	var errs []string
	if math.IsNaN(tn) || tn < 0 || tn > MaxThreshold {
		errs = append(errs, fmt.Sprintf("%s.tn: %v must be from 0 to %g", prefix, tn, float64(MaxThreshold)))
	}
	if math.IsNaN(tx) || tx <= 0 || tx > MaxThreshold {
		errs = append(errs, fmt.Sprintf("%s.tx: %v must be above 0 and at most %g", prefix, tx, float64(MaxThreshold)))
	}
	if len(errs) == 0 && tx < tn {
		errs = append(errs, fmt.Sprintf("%s.tx: %v is below tn %v", prefix, tx, tn))
	}
	return errs
}

type change struct {
	key  userKey
	user *UserThreshold // nil: back to learning
}

// Validate reports every problem of an update at once.
func (u *ModelUpdate) Validate() error {
	_, err := u.changes()
	return err
}

func (u *ModelUpdate) changes() ([]change, error) {
	var errs []string
	for t, k := range u.Types {
		if typeIndex(t) < 0 {
			errs = append(errs, fmt.Sprintf("types: unknown attack type %q", t))
		}
		if k.Sensitivity != nil {
			errs = append(errs, checkSensitivity(fmt.Sprintf("types.%s.sensitivity", t), *k.Sensitivity)...)
		}
	}
	var changes []change
	for i, vu := range u.Variables {
		v, ok := varByName(vu.Name)
		if !ok {
			errs = append(errs, fmt.Sprintf("variables[%d].name: unknown variable %q (want one of %s)", i, vu.Name, strings.Join(VariableNames(), ", ")))
			continue
		}
		key, e := variableKey(fmt.Sprintf("variables[%d]", i), v, vu.Kind, vu.Endpoint)
		if e != nil {
			errs = append(errs, e...)
			continue
		}
		switch vu.Mode {
		case "user":
			if vu.Tn == nil || vu.Tx == nil {
				errs = append(errs, fmt.Sprintf("variables[%d]: mode user needs tn ≥ 0 and tx > 0 with tx ≥ tn", i))
				continue
			}
			if e := checkThresholds(fmt.Sprintf("variables[%d]", i), *vu.Tn, *vu.Tx); e != nil {
				errs = append(errs, e...)
				continue
			}
			changes = append(changes, change{key, &UserThreshold{Tn: *vu.Tn, Tx: *vu.Tx}})
		case "system":
			changes = append(changes, change{key, nil})
		default:
			errs = append(errs, fmt.Sprintf("variables[%d].mode: %q (want user or system)", i, vu.Mode))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, errors.New(strings.Join(errs, "; "))
	}
	return changes, nil
}

// Apply validates an update and applies it to the model of api (a
// configured API's model exists before it sees traffic); nothing changes
// when there is a problem. OnModelChange is then told.
func (e *Engine) Apply(api string, u *ModelUpdate) error {
	if err := e.apply(api, u); err != nil {
		return err
	}
	e.changed(api, u)
	return nil
}

// ApplyFromPeer is Apply of an update another replica made (its
// OnModelChange): the same change, without calling OnModelChange again.
func (e *Engine) ApplyFromPeer(api string, u *ModelUpdate) error { return e.apply(api, u) }

// changed tells OnModelChange of a local change.
func (e *Engine) changed(api string, u *ModelUpdate) {
	if e.cfg.OnModelChange != nil {
		e.cfg.OnModelChange(api, u)
	}
}

func (e *Engine) apply(api string, u *ModelUpdate) error {
	m := e.modelByName(api)
	if m == nil {
		return fmt.Errorf("no model for API %q", api)
	}
	changes, err := u.changes()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for t, k := range u.Types {
		i := typeIndex(t)
		if k.Enabled != nil {
			m.knobs[i].Enabled = *k.Enabled
		}
		if k.Sensitivity != nil {
			m.knobs[i].Sensitivity = *k.Sensitivity
		}
	}
	for _, c := range changes {
		if c.user == nil {
			delete(m.user, c.key)
		} else {
			m.user[c.key] = *c.user
		}
	}
	knobs := m.knobs
	m.knobsSnap.Store(&knobs)
	m.thresholds.Store(m.compute())
	return nil
}

// Validate reports every problem of a model document at once, each naming
// its field: the version, the attack types and their sensitivity, every
// variable's name, kind, mode and thresholds, the status's numbers.
func (doc *ModelDoc) Validate() error {
	if doc.Version != ModelVersion {
		return fmt.Errorf("version: model version %d, this Vigil reads version %d", doc.Version, ModelVersion)
	}
	var errs []string
	for t, k := range doc.Types {
		if typeIndex(t) < 0 {
			errs = append(errs, fmt.Sprintf("types: unknown attack type %q", t))
		}
		errs = append(errs, checkSensitivity(fmt.Sprintf("types.%s.sensitivity", t), k.Sensitivity)...)
	}
	for i, vd := range doc.Variables {
		v, ok := varByName(vd.Name)
		if !ok {
			errs = append(errs, fmt.Sprintf("variables[%d]: unknown variable %q for kind %q", i, vd.Name, vd.Kind))
			continue
		}
		if _, e := variableKey(fmt.Sprintf("variables[%d]", i), v, vd.Kind, vd.Endpoint); e != nil {
			errs = append(errs, e...)
			continue
		}
		if vd.Mode != "user" && vd.Mode != "system" {
			errs = append(errs, fmt.Sprintf("variables[%d].mode: %q (want user or system)", i, vd.Mode))
		}
		errs = append(errs, checkThresholds(fmt.Sprintf("variables[%d]", i), vd.Tn, vd.Tx)...)
		if vd.Samples < 0 {
			errs = append(errs, fmt.Sprintf("variables[%d].samples: %d is negative", i, vd.Samples))
		}
	}
	if st := doc.Status; st != nil {
		if st.State != "" && st.State != "learning" && st.State != "ready" {
			errs = append(errs, fmt.Sprintf("status.state: %q (want learning or ready)", st.State))
		}
		for name, n := range map[string]int64{"requests": st.Requests, "identities": st.Identities, "would_be_detections": st.WouldBeDetections} {
			if n < 0 {
				errs = append(errs, fmt.Sprintf("status.%s: %d is negative", name, n))
			}
		}
		for name, f := range map[string]float64{"duration": st.Progress.Duration, "requests": st.Progress.Requests, "identities": st.Progress.Identities} {
			if math.IsNaN(f) || f < 0 || f > 1 {
				errs = append(errs, fmt.Sprintf("status.progress.%s: %v must be from 0 to 1", name, f))
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Import installs an exported model: its knobs, its user thresholds, and
// its learned thresholds as the baseline used until this deployment has
// learned enough of its own. The model is ready at once. OnModelChange is
// then told of its knobs and user thresholds.
func (e *Engine) Import(doc *ModelDoc) error {
	u, err := e.importDoc(doc)
	if err != nil {
		return err
	}
	e.changed(doc.API, u)
	return nil
}

// importDoc is Import without OnModelChange; it returns the update of the
// doc's knobs and user thresholds.
func (e *Engine) importDoc(doc *ModelDoc) (*ModelUpdate, error) {
	if err := doc.Validate(); err != nil {
		return nil, err
	}
	u, base := docUpdate(doc)
	m := e.modelByName(doc.API)
	if m == nil {
		return nil, fmt.Errorf("no model for API %q", doc.API)
	}
	if err := e.apply(doc.API, u); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.base = base
	m.thresholds.Store(m.compute())
	// A model that had finished learning where it came from is ready here;
	// one still learning goes on learning.
	if doc.Status == nil || doc.Status.State == "ready" {
		m.ready.Store(true)
		m.startedAt(doc.Status)
	}
	m.mu.Unlock()
	return u, nil
}

// startedAt takes the start of a ready model's document (saved before a
// restart, imported, or the trainer's) where it is earlier than the
// model's own: the model's thresholds come from traffic since then, so
// the variables over long windows (a day) are armed as they were there,
// not a day after every restart. Call with m.mu held.
func (m *apiModel) startedAt(st *ModelStatus) {
	if st == nil || st.Start.IsZero() || !m.start.IsZero() && !st.Start.Before(m.start) {
		return
	}
	m.start = st.Start
	m.since.Store(st.Start.UnixNano())
	if m.nextRelearn.IsZero() {
		m.nextRelearn = st.Start.Add(m.relearnEvery())
	}
}

// docUpdate splits a valid model document into the update of its knobs
// and user thresholds and its learned (system) thresholds.
func docUpdate(doc *ModelDoc) (*ModelUpdate, map[userKey]UserThreshold) {
	u := &ModelUpdate{Types: map[detect.AttackType]TypeKnobsUpdate{}}
	for t, k := range doc.Types {
		u.Types[t] = TypeKnobsUpdate{Enabled: &k.Enabled, Sensitivity: &k.Sensitivity}
	}
	base := map[userKey]UserThreshold{}
	for _, vd := range doc.Variables {
		v, _ := varByName(vd.Name)
		key, _ := variableKey("", v, vd.Kind, vd.Endpoint)
		if vd.Mode == "user" {
			u.Variables = append(u.Variables, VariableUpdate{Name: vd.Name, Kind: vd.Kind, Endpoint: vd.Endpoint, Mode: "user", Tn: &vd.Tn, Tx: &vd.Tx})
		} else {
			base[key] = UserThreshold{Tn: vd.Tn, Tx: vd.Tx}
		}
	}
	return u, base
}

// Adopt installs a model the trainer replica published, exactly: its
// knobs (types it omits get the defaults), its user thresholds (and no
// others), its learned thresholds as the base, and its readiness (a doc
// without a status is ready). While this replica is not the trainer
// (EngineConfig.Trainer), its own samples never replace the base; once it
// becomes the trainer they do, as for an imported model, past enough
// samples of its own. It creates the model of a discovered API too, and
// never calls OnModelChange.
func (e *Engine) Adopt(doc *ModelDoc) error {
	if err := doc.Validate(); err != nil {
		return err
	}
	m := e.modelByName(doc.API)
	if m == nil {
		m = e.discoveredModel(doc.API)
	}
	if m == nil {
		return fmt.Errorf("no model for API %q (too many models)", doc.API)
	}
	u, base := docUpdate(doc)
	changes, err := u.changes()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, t := range allTypes() {
		k, ok := doc.Types[t]
		if !ok {
			k = TypeKnobs{Enabled: true, Sensitivity: 1}
		}
		m.knobs[i] = k
	}
	m.user = map[userKey]UserThreshold{}
	for _, c := range changes {
		m.user[c.key] = *c.user
	}
	m.base = base
	knobs := m.knobs
	m.knobsSnap.Store(&knobs)
	m.thresholds.Store(m.compute())
	ready := doc.Status == nil || doc.Status.State == "ready"
	if ready {
		m.startedAt(doc.Status)
	}
	if ready && !m.ready.Load() {
		m.readyAt = m.lastSeen
		if doc.Status != nil && !doc.Status.ReadyAt.IsZero() {
			m.readyAt = doc.Status.ReadyAt
		}
	}
	m.ready.Store(ready)
	return nil
}

// modelByName returns the model of api, creating it for a configured API
// that has seen no traffic yet.
func (e *Engine) modelByName(api string) *apiModel {
	e.mu.RLock()
	m := e.models[api]
	e.mu.RUnlock()
	if m != nil {
		return m
	}
	for _, a := range e.cfg.APIs {
		if a.Name == api {
			e.mu.Lock()
			defer e.mu.Unlock()
			if m = e.models[api]; m == nil {
				m = e.newModel(a.Name, a)
				e.models[api] = m
			}
			return m
		}
	}
	return nil
}

// Restore installs a model document saved by this deployment before a
// restart, creating the model of a discovered API too.
// It is no change to tell other replicas of: OnModelChange is not called.
func (e *Engine) Restore(doc *ModelDoc) error {
	if e.modelByName(doc.API) == nil {
		e.discoveredModel(doc.API)
	}
	_, err := e.importDoc(doc)
	return err
}

// discoveredModel returns the model of api, creating it as a discovered
// API's (nil past MaxAPIs).
func (e *Engine) discoveredModel(api string) *apiModel {
	e.mu.Lock()
	defer e.mu.Unlock()
	if m := e.models[api]; m != nil {
		return m
	}
	if len(e.models) >= e.cfg.MaxAPIs {
		return nil
	}
	m := e.newModel(api, e.hostAPI(api))
	e.models[api] = m
	return m
}

// ModelDocs returns the documents of every model, for saving.
func (e *Engine) ModelDocs() []*ModelDoc {
	var out []*ModelDoc
	for _, st := range e.Models() {
		if d, ok := e.Model(st.API); ok {
			out = append(out, d)
		}
	}
	return out
}

// Relax raises, on the attack's API, the Tx of every variable that fired
// to half again the value observed, as user-set thresholds (mode user), so
// that the same behaviour no longer raises an attack. Setting a variable
// back to mode system undoes it.
func (e *Engine) Relax(a *detect.Attack) ([]detect.Relaxation, error) {
	if a.Type == detect.AttackDecoy {
		return nil, nil // a decoy has no threshold
	}
	// The explanation's Tx is the effective one (Tx / sensitivity): the user
	// Tx stored is scaled back by the type's sensitivity, so that the
	// effective limit becomes half again the value observed.
	var knobs *[numTypes]TypeKnobs
	if m := e.modelByName(a.API); m != nil {
		knobs = m.knobsSnap.Load()
	}
	kind := judgedIn(a)
	u := &ModelUpdate{}
	var out []detect.Relaxation
	for _, v := range a.Variables {
		id, ok := varByName(v.Name)
		if !ok || v.Observed <= v.Tx {
			continue
		}
		kind, endpoint := kind, ""
		if id == vEndpointBytes {
			kind, endpoint = endpointKind, v.Location
		}
		sens := 1.0
		if knobs != nil && knobs[varType[id]].Sensitivity > 0 {
			sens = knobs[varType[id]].Sensitivity
		}
		tn, tx := v.Tn, min(round(v.Observed*1.5*sens), MaxThreshold)
		if tx < tn {
			tn = tx
		}
		u.Variables = append(u.Variables, VariableUpdate{Name: v.Name, Kind: kind, Endpoint: endpoint, Mode: "user", Tn: &tn, Tx: &tx})
		out = append(out, detect.Relaxation{Name: v.Name, Kind: kind, Endpoint: endpoint, OldTx: v.Tx, NewTx: tx})
	}
	if len(u.Variables) == 0 {
		return nil, nil
	}
	if err := e.Apply(a.API, u); err != nil {
		return nil, err
	}
	return out, nil
}

// judgedIn is the population an attack's identity was judged in, as its
// record tells: a range is a network; a shared address's explanation says
// how many users it showed (ip_shared), a credential's that it was seen
// from a shared address (<kind>_on_shared_ip), and an attack recorded
// under the credential that carried it that the variables are its
// address's (ip).
func judgedIn(a *detect.Attack) string {
	kind := a.Identity.Kind
	if kind == detect.KindIP.String() && isNetwork(a.Identity.Value) {
		return popNetwork.String()
	}
	for _, v := range a.Variables {
		switch v.Name {
		case usersVariableName:
			if v.Observed >= sharedUsers && kind == detect.KindIP.String() {
				return popSharedIP.String()
			}
		case addressVariable:
			return detect.KindIP.String()
		case sharedAddressVariableName:
			if k, err := detect.ParseKind(kind); err == nil && k != detect.KindIP {
				return onShared(k).String()
			}
		}
	}
	return kind
}

package inspect

// Profiles are the learned profiles of one endpoint's parameters (by
// location and key path). A nil *Profiles means no profile: every signature
// hit is a finding.
type Profiles struct{}

// checkKey checks a JSON key of a write against the object's learned key
// set.
func (p *Profiles) checkKey(st *state, objPath, key []byte) {}

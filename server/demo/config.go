package demo

import (
	"bytes"
	_ "embed"
)

//go:embed config.yaml
var configYAML []byte

// ConfigYAML returns Vigil's configuration for the demo: the shop-bidding
// API in block mode, identities from the bearer token and its sub claim,
// the login path, two decoys, body limits, and training settings that the
// pre-training satisfies.
func ConfigYAML() []byte { return bytes.Clone(configYAML) }

// Package decoy will own decoy APIs and honeytokens: matching decoy paths,
// answering them with plausible responses, and recording hits. The
// enforcement hot path already calls a decoy hook (detect.DecoyFunc, set
// with detect.Enforcer.SetDecoy) between the block list and the hard
// limits; this package fills it.
package decoy

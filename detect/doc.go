// Package detect owns what Vigil knows about API traffic, independent of Envoy
// and gRPC: client identities and their keyed fingerprints, the API catalog
// (configured and discovered APIs, endpoint templates), the block and allow
// lists, the enforcement hot path that turns one request into a verdict, the
// transaction records and the pipeline that joins them, the inventory and
// forensics built from them, and the behavioural detection engine (per-identity
// windows and sketches, per-API models with learned Tn/Tx, the multivariate
// model, explained attack records).
//
// Nothing here imports Envoy or gRPC types: the envoy package translates
// Envoy's messages into [Request] values and [Verdict] values back.
package detect

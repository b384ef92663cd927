// Package detect owns what Vigil knows about API traffic, independent of Envoy
// and gRPC: client identities and their keyed fingerprints, the API catalog
// (configured and discovered APIs, endpoint templates), the block and allow
// lists, the enforcement hot path that turns one request into a verdict, and
// the transaction records that the detection pipeline consumes.
//
// Nothing here imports Envoy or gRPC types: the envoy package translates
// Envoy's messages into [Request] values and [Verdict] values back.
package detect

// Package detect owns what Vigil knows about one API call, independent of
// Envoy and gRPC, and the hot path that decides it: client identities and
// their keyed fingerprints, the API catalog (configured and discovered APIs,
// login paths, endpoint templates, path cleaning), the block and allow lists,
// the enforcement hot path that turns one request into a verdict, JSON
// counting, the transaction records, the queue and the pipeline that joins
// them and hands them to its sinks, replay records, and attack records with
// their store.
//
// What consumes the pipeline lives beside it: detect/behaviour (the
// behavioural detection engine and its models) and detect/observe (the
// inventory, activity and forensics). This package imports neither: it
// declares the interfaces it needs from them ([Sink]) and the hooks its
// enforcer calls ([DecoyFunc]), and test/archrules fails the build's tests
// when it imports them, Envoy, gRPC or the store.
//
// Nothing here imports Envoy or gRPC types: the envoy package translates
// Envoy's messages into [Request] values and [Verdict] values back.
package detect

// Package envoy speaks Envoy's protocols: it serves
// envoy.service.ext_proc.v3.ExternalProcessor and
// envoy.service.auth.v3.Authorization, translates Envoy's messages into
// detect.Request values, runs them through the enforcement hot path, and
// answers with Envoy's messages. It is the only package that imports Envoy's
// API types; it knows nothing of how detection works.
package envoy

package server

// Version is the version a build stamps with -ldflags
// "-X github.com/vigil-project/vigil/server.Version=…" (the Dockerfile's
// VERSION build argument). Left "dev" (or stamped empty), vigil version
// reports the module version and VCS revision the Go toolchain recorded
// in the binary.
var Version = "dev"

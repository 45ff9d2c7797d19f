// Package version holds build metadata, set with -ldflags at build time (see the Makefile).
package version

import "runtime"

var (
	// Version is the plugin's semantic version. Vault requires exactly vX.Y.Z, and refuses a
	// registration whose -version differs from what the binary reports.
	Version = "v0.1.0"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
)

// GoVersion is the Go toolchain the binary was built with.
func GoVersion() string { return runtime.Version() }

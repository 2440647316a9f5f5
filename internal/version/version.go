// Package version holds the build's version, stamped at link time with
// -ldflags "-X github.com/remediator/remediator/internal/version.Version=v1.2.3".
package version

// Version is the release version; "dev" for an unstamped build.
var Version = "dev"

// Commit is the git commit of the build, when stamped.
var Commit = ""

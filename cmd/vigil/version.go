package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// runVersion is "vigil version" (also "vigil --version"): what was built,
// from the build information the go command embeds in every binary.
func runVersion(_ context.Context, e *env, args []string) error {
	fs := newFlags(e, "version", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	fmt.Fprint(e.stdout, versionText(bi))
	return nil
}

// versionText describes a build: the module version ("(devel)" for a build
// from a checkout without VCS stamping; with it, a pseudo-version such as
// v0.0.0-20261205125446-73169671252b, "+dirty" when the tree had changes),
// the commit and its time when the go command stamped them (a build from a
// git clone; not "go install module@version" nor -buildvcs=false), the Go
// version and the platform. bi may be nil (a binary without build
// information).
func versionText(bi *debug.BuildInfo) string {
	var b strings.Builder
	if bi == nil {
		fmt.Fprintf(&b, "vigil (unknown version: no build information)\n  go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return b.String()
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	path := bi.Main.Path
	if path == "" {
		path = bi.Path
	}
	fmt.Fprintf(&b, "vigil %s (%s)\n", version, path)
	s := map[string]string{}
	for _, kv := range bi.Settings {
		s[kv.Key] = kv.Value
	}
	if rev := s["vcs.revision"]; rev != "" {
		if s["vcs.modified"] == "true" {
			rev += "+dirty"
		}
		fmt.Fprintf(&b, "  commit: %s\n", rev)
		if t := s["vcs.time"]; t != "" {
			fmt.Fprintf(&b, "  commit time: %s\n", t)
		}
	} else {
		fmt.Fprintf(&b, "  commit: unknown (built without VCS stamping)\n")
	}
	goos, goarch := s["GOOS"], s["GOARCH"]
	if goos == "" || goarch == "" {
		goos, goarch = runtime.GOOS, runtime.GOARCH
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	fmt.Fprintf(&b, "  go: %s %s/%s\n", goVersion, goos, goarch)
	return b.String()
}

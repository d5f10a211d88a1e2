package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionText(t *testing.T) {
	set := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		bi   *debug.BuildInfo
		want []string
		not  []string
	}{
		{
			name: "clone with changes",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/vigil-iot/vigil", Version: "v0.0.0-20261205125446-73169671252b+dirty"},
				Settings: set("GOOS", "linux", "GOARCH", "arm64", "vcs", "git", "vcs.revision", "73169671252b95726cb6b83cf6b65566adc19921",
					"vcs.time", "2026-12-05T12:54:46Z", "vcs.modified", "true")},
			want: []string{"vigil v0.0.0-20261205125446-73169671252b+dirty (github.com/vigil-iot/vigil)\n",
				"  commit: 73169671252b95726cb6b83cf6b65566adc19921+dirty\n", "  commit time: 2026-12-05T12:54:46Z\n", "  go: go1.26.8 linux/arm64\n"},
		},
		{
			name: "clean clone",
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/vigil-iot/vigil", Version: "v0.0.0-20261205125446-73169671252b"},
				Settings: set("GOOS", "linux", "GOARCH", "amd64", "vcs.revision", "73169671252b95726cb6b83cf6b65566adc19921", "vcs.modified", "false")},
			want: []string{"  commit: 73169671252b95726cb6b83cf6b65566adc19921\n", "  go: go1.26.8 linux/amd64\n"},
			not:  []string{"dirty", "commit time"},
		},
		{
			name: "go install of a release",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/vigil-iot/vigil", Version: "v1.2.3"}},
			want: []string{"vigil v1.2.3 (github.com/vigil-iot/vigil)\n", "  commit: unknown (built without VCS stamping)\n",
				"  go: go1.26.0 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"},
		},
		{
			name: "checkout without stamping",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Path: "github.com/vigil-iot/vigil/cmd/vigil", Main: debug.Module{Path: "github.com/vigil-iot/vigil", Version: "(devel)"}},
			want: []string{"vigil (devel) (github.com/vigil-iot/vigil)\n"},
		},
		{
			name: "no build information",
			want: []string{"vigil (unknown version: no build information)\n", "  go: " + runtime.Version()},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := versionText(tc.bi)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("got %q; want it to contain %q", got, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(got, n) {
					t.Errorf("got %q; want no %q", got, n)
				}
			}
		})
	}
}

// TestVersionCommand: "vigil version" and "vigil --version" print the same
// text, which names this binary's Go version.
func TestVersionCommand(t *testing.T) {
	code, out, errs := runCLI(t, "version")
	if code != 0 || !strings.HasPrefix(out, "vigil ") || !strings.Contains(out, "  go: "+runtime.Version()+" ") {
		t.Fatalf("vigil version: exit %d, stdout %q, stderr %q; want exit 0 and the Go version %s", code, out, errs, runtime.Version())
	}
	code2, out2, _ := runCLI(t, "--version")
	if code2 != 0 || out2 != out {
		t.Errorf("vigil --version: exit %d, %q; want exit 0 and the same text as vigil version", code2, out2)
	}
	if code, _, errs := runCLI(t, "version", "extra"); code != 2 || !strings.Contains(errs, "unexpected arguments") {
		t.Errorf("vigil version extra: exit %d, stderr %q; want exit 2", code, errs)
	}
}

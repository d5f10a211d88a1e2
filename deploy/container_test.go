package deploy

import (
	"encoding/json"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// instruction is one line of a Containerfile (continuations joined).
type instruction struct{ op, args string }

func parseContainerfile(t *testing.T, text string) []instruction {
	t.Helper()
	var out []instruction
	var cur string
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || trimmed[0] == '#') {
			continue
		}
		cur += " " + strings.TrimSuffix(trimmed, `\`)
		if strings.HasSuffix(trimmed, `\`) {
			continue
		}
		op, args, _ := strings.Cut(strings.TrimSpace(cur), " ")
		out = append(out, instruction{strings.ToUpper(op), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// execForm decodes a JSON-array argument (["a", "b"]).
func execForm(t *testing.T, what, args string) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil {
		t.Fatalf("%s %s: want the exec (JSON array) form: %v", what, args, err)
	}
	return v
}

// TestContainerfile checks deploy/container/Containerfile without building
// it (there is no container engine here): the Go image is at least the
// go.mod version; the binary is static and trimmed; the final stage runs as
// a numeric non-root user with the state volume; the entry point is the
// binary it copies; the health check is "vigil health" on the port the
// compose stack's Vigil listens on, and the built binary accepts it; and
// the build context never includes the compose stack's secrets.
func TestContainerfile(t *testing.T) {
	ins := parseContainerfile(t, readFile(t, "container/Containerfile"))
	last := 0
	for i, in := range ins {
		if in.op == "FROM" {
			last = i
		}
	}
	build, final := ins[:last], ins[last:]
	find := func(stage []instruction, op string) []string {
		var args []string
		for _, in := range stage {
			if in.op == op {
				args = append(args, in.args)
			}
		}
		return args
	}

	goMod := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(readFile(t, "../go.mod"))
	arg := regexp.MustCompile(`^GO_VERSION=(\d+)\.(\d+)$`)
	var image []string
	for _, a := range find(ins, "ARG") {
		if m := arg.FindStringSubmatch(a); m != nil {
			image = m
		}
	}
	if goMod == nil || image == nil {
		t.Fatalf("go.mod's go line %q, ARG GO_VERSION %q: want both as MAJOR.MINOR", goMod, image)
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	if im, gm := [2]int{atoi(image[1]), atoi(image[2])}, [2]int{atoi(goMod[1]), atoi(goMod[2])}; im[0] < gm[0] || im[0] == gm[0] && im[1] < gm[1] {
		t.Errorf("GO_VERSION %s.%s is older than go.mod's go %s.%s", image[1], image[2], goMod[1], goMod[2])
	}

	runs := strings.Join(find(build, "RUN"), "\n")
	if !slices.Contains(find(build, "ENV"), "CGO_ENABLED=0") || !strings.Contains(runs, "-trimpath") || !strings.Contains(runs, `-ldflags="-s -w"`) {
		t.Errorf("the build stage must set CGO_ENABLED=0 and build with -trimpath and -ldflags=\"-s -w\"")
	}

	if u := find(final, "USER"); !slices.Equal(u, []string{"65532:65532"}) {
		t.Errorf("final stage USER %q; want 65532:65532 (numeric: a runtime can then enforce non-root)", u)
	}
	if v := find(final, "VOLUME"); len(v) != 1 || !slices.Equal(execForm(t, "VOLUME", v[0]), []string{"/var/lib/vigil"}) {
		t.Errorf("final stage VOLUME %q; want /var/lib/vigil", v)
	}
	ep := find(final, "ENTRYPOINT")
	if len(ep) != 1 {
		t.Fatalf("final stage ENTRYPOINT %q; want one", ep)
	}
	entry := execForm(t, "ENTRYPOINT", ep[0])
	copied := false
	for _, c := range find(final, "COPY") {
		copied = copied || strings.HasSuffix(c, " "+entry[0])
	}
	if !copied {
		t.Errorf("ENTRYPOINT %s is not a file the final stage copies", entry[0])
	}

	hc := find(final, "HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("final stage HEALTHCHECK %q; want one", hc)
	}
	_, form, ok := strings.Cut(hc[0], "CMD ")
	if !ok {
		t.Fatalf("HEALTHCHECK %q has no CMD", hc[0])
	}
	probe := execForm(t, "HEALTHCHECK CMD", form)
	if len(probe) < 2 || probe[0] != entry[0] || probe[1] != "health" {
		t.Fatalf("HEALTHCHECK CMD %q; want %s health", probe, entry[0])
	}
	var vc struct {
		Metrics struct {
			Listen string `yaml:"listen"`
		} `yaml:"metrics"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "compose/vigil.yaml")), &vc); err != nil {
		t.Fatal(err)
	}
	_, listenPort, err := net.SplitHostPort(vc.Metrics.Listen)
	if err != nil || !strings.Contains(strings.Join(probe, " "), "127.0.0.1:"+listenPort+"/") {
		t.Errorf("HEALTHCHECK %q does not probe loopback on the port compose/vigil.yaml listens on (%q)", probe, vc.Metrics.Listen)
	}
	bin := buildVigil(t)
	if code, _, errs := runTool(t, bin, append(probe[1:], "-h")...); code != 0 {
		t.Errorf("vigil %s -h: exit %d\n%s", strings.Join(probe[1:], " "), code, errs)
	}

	if ignore := readFile(t, "../.dockerignore"); !slices.Contains(strings.Split(ignore, "\n"), "deploy/compose/secrets") {
		t.Error(".dockerignore must exclude deploy/compose/secrets from the build context")
	}
}

// Command vigil is an anomaly-detection sidecar for industrial IoT telemetry.
//
//	vigil run --config FILE         run as a sidecar to an MQTT broker
//	vigil bridge --config FILE      publish MQTT telemetry into the partitioned JetStream stream
//	vigil demo                      embedded broker + simulated fleet + live view
//	vigil replay [flags] FILE...    replay plant logs through the detection pipeline
//	vigil simulate [flags]          generate a labelled plant log, or publish to a broker
//	vigil config check FILE         validate a configuration file
//	vigil journal check|inspect DIR check, repair or print the alert journal
//	vigil state inspect FILE        show what a snapshot has learned
//	vigil health [--url URL]        probe a running Vigil's /healthz (for container health checks)
//	vigil version                   the version, commit and Go version of this binary
//	vigil completion bash|zsh|fish  a shell completion script
//
// Run "vigil help COMMAND" for the flags of a command, "vigil help" for the
// help topics (config, alerts, exit-codes).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
	// subs are the words that must follow name ("journal check"), if any:
	// for completion, which runs "name sub -h" for each to learn its flags.
	subs []string
}

// env is what a command may touch: no globals, so commands are testable.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
	// onFlags, when set, is told of every flag set a command builds, with
	// its synopsis: how completion learns the flags from the commands.
	onFlags func(fs *flag.FlagSet, synopsis string)
}

func commands() []command {
	return []command{
		{"run", "run as a sidecar to an MQTT broker and republish alerts", runLive, nil},
		{"bridge", "publish the plant's MQTT messages into the partitioned JetStream stream of the scale-out", runBridge, nil},
		{"cluster", "show the scale-out's partitions, owners, checkpoints and workers (cluster status)", runCluster, []string{"status"}},
		{"demo", "run an embedded broker, a simulated fleet and the pipeline, with a live view", runDemo, nil},
		{"replay", "replay plant logs through the detection pipeline and print alerts", runReplay, nil},
		{"tune", "search detector parameters over labelled logs and write the best as a config", runTune, nil},
		{"simulate", "generate a labelled plant log, or publish a simulated fleet to a broker", runSimulate, nil},
		{"config", "check a configuration file (config check FILE)", runConfig, []string{"check"}},
		{"journal", "check, repair or inspect the alert journal (journal check|inspect DIR)", runJournal, []string{"check", "inspect"}},
		{"state", "show a learned-state snapshot (state inspect FILE)", runState, []string{"inspect"}},
		{"health", "probe a running Vigil's /healthz or /readyz; exit 0 when it answers 200", runHealth, nil},
		{"version", "print the version, commit and Go version of this binary (also --version)", runVersion, nil},
		{"completion", "print a shell completion script (completion bash|zsh|fish)", runCompletion, nil},
	}
}

// Exit codes, documented in docs/CLI.md.
const (
	exitOK       = 0  // done, or stopped by SIGINT/SIGTERM after a clean drain
	exitError    = 1  // a runtime error: I/O, broker, state, …
	exitUsage    = 2  // bad flags or arguments
	exitRejected = 3  // replay: the input's rejected share reached --max-rejected
	exitConfig   = 78 // the configuration is invalid (EX_CONFIG of sysexits.h)
)

var (
	// errUsage marks errors that should print usage; exit code 2.
	errUsage = errors.New("usage")
	// errRejected marks a replay whose input was rejected above the
	// threshold; exit code 3.
	errRejected = errors.New("input rejected")
	// errConfig marks an invalid configuration; exit code 78, so a service
	// manager can tell it from a transient failure and stop restarting
	// (systemd: RestartPreventExitStatus=78).
	errConfig = errors.New("invalid configuration")
)

// loadConfig is config.Load, its errors marked errConfig.
func loadConfig(path string) (*config.File, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, configError{err}
	}
	return cfg, nil
}

// configError marks err as a configuration error without changing its text.
type configError struct{ err error }

func (c configError) Error() string   { return c.err.Error() }
func (c configError) Unwrap() []error { return []error{c.err, errConfig} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal asks for a clean stop (drain, final snapshot); once
	// it has, the default action is back, so a second Ctrl-C or SIGTERM
	// ends the process at once, whatever it is waiting for.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], &env{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		log:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" && len(args) == 1 {
		usage(e.stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	rest := args[1:]
	if name == "--version" || name == "-version" {
		name = "version"
	}
	if name == "help" {
		if len(args) > 2 {
			fmt.Fprintln(e.stderr, "vigil help: one command or topic at a time")
			return exitUsage
		}
		if t, ok := helpTopic(args[1]); ok {
			fmt.Fprint(e.stdout, t.text())
			return exitOK
		}
		name, rest = args[1], []string{"-h"}
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, rest)
		if err == nil || errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		fmt.Fprintf(e.stderr, "vigil %s: %v\n", name, err)
		return exitCode(err)
	}
	fmt.Fprintf(e.stderr, "vigil: unknown command %q\n\n", name)
	usage(e.stderr)
	return exitUsage
}

// exitCode maps a command's error to the process's exit status.
func exitCode(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, errConfig):
		return exitConfig
	case errors.Is(err, errRejected):
		return exitRejected
	}
	return exitError
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Vigil: anomaly detection for industrial IoT telemetry.\n\nUsage: vigil COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nHelp topics (vigil help TOPIC):")
	for _, t := range helpTopics() {
		fmt.Fprintf(w, "  %-10s %s\n", t.name, t.summary)
	}
	fmt.Fprintln(w, "\nRun 'vigil COMMAND -h' (or 'vigil help COMMAND') for a command's flags and examples.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: vigil %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
		if ex := examples(name); len(ex) > 0 {
			fmt.Fprintln(e.stderr, "\nExamples:")
			for _, x := range ex {
				fmt.Fprintf(e.stderr, "  %s\n", x)
			}
		}
	}
	if e.onFlags != nil {
		e.onFlags(fs, synopsis)
	}
	return fs
}

// parseFlags parses args, mapping parse failures to errUsage. Flags may come
// after the arguments, as with most command-line tools (`vigil replay
// plant.log --alerts out.jsonl`); everything after "--" is an argument.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // "--" ended the flags
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	// Leave the arguments where fs.Args finds them.
	return fs.Parse(append([]string{"--"}, pos...))
}

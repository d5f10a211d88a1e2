// Command vigil is an anomaly-detection sidecar for industrial IoT telemetry.
//
//	vigil run --config FILE         run as a sidecar to an MQTT broker
//	vigil demo                      embedded broker + simulated fleet + live view
//	vigil replay [flags] FILE...    replay plant logs through the detection pipeline
//	vigil simulate [flags]          generate a labelled plant log, or publish to a broker
//	vigil config check FILE         validate a configuration file
//	vigil journal check|inspect DIR check, repair or print the alert journal
//	vigil state inspect FILE        show what a snapshot has learned
//	vigil health [--url URL]        probe a running Vigil's /healthz (for container health checks)
//	vigil version                   the version, commit and Go version of this binary
//
// Run "vigil help COMMAND" for the flags of a command.
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
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// env is what a command may touch: no globals, so commands are testable.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	log            *slog.Logger
}

func commands() []command {
	return []command{
		{"run", "run as a sidecar to an MQTT broker and republish alerts", runLive},
		{"demo", "run an embedded broker, a simulated fleet and the pipeline, with a live view", runDemo},
		{"replay", "replay plant logs through the detection pipeline and print alerts", runReplay},
		{"tune", "search detector parameters over labelled logs and write the best as a config", runTune},
		{"simulate", "generate a labelled plant log, or publish a simulated fleet to a broker", runSimulate},
		{"config", "check a configuration file (config check FILE)", runConfig},
		{"journal", "check, repair or inspect the alert journal (journal check|inspect DIR)", runJournal},
		{"state", "show a learned-state snapshot (state inspect FILE)", runState},
		{"health", "probe a running Vigil's /healthz or /readyz; exit 0 when it answers 200", runHealth},
		{"version", "print the version, commit and Go version of this binary (also --version)", runVersion},
	}
}

// errUsage marks errors that should print usage; exit code 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
		name, rest = args[1], []string{"-h"}
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		err := c.run(ctx, e, rest)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(e.stderr, "vigil %s: %v\n", name, err)
			return 2
		default:
			fmt.Fprintf(e.stderr, "vigil %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(e.stderr, "vigil: unknown command %q\n\n", name)
	usage(e.stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Vigil: anomaly detection for industrial IoT telemetry.\n\nUsage: vigil COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'vigil COMMAND -h' for a command's flags.")
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(e *env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("vigil "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: vigil %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping parse failures to errUsage.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

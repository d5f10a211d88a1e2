package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
)

// runCompletion is "vigil completion bash|zsh|fish": a completion script
// for the shell, made from the commands' own flag sets, so a new flag is
// completed without anyone editing a script.
func runCompletion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "completion", "bash|zsh|fish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: vigil completion bash|zsh|fish", errUsage)
	}
	specs, err := completionSpecs(ctx)
	if err != nil {
		return err
	}
	switch fs.Arg(0) {
	case "bash":
		_, err = io.WriteString(e.stdout, bashCompletion(specs))
	case "zsh":
		_, err = io.WriteString(e.stdout, zshCompletion(specs))
	case "fish":
		_, err = io.WriteString(e.stdout, fishCompletion(specs))
	default:
		return fmt.Errorf("%w: unknown shell %q: want bash, zsh or fish", errUsage, fs.Arg(0))
	}
	return err
}

// argKind is what a command's arguments are.
type argKind uint8

const (
	argsNone  argKind = iota
	argsFiles         // FILE, FILE..., LOG...
	argsDirs          // DIR
	argsWords         // fixed words (completion's shells, help's topics)
)

// compFlag is a flag to complete.
type compFlag struct {
	name   string
	value  bool // takes a value (not a boolean flag)
	file   bool // the value is a file: its usage names it `file`
	usage  string
	values []string
}

// compCommand is a command line to complete: "replay", "journal check".
type compCommand struct {
	path    string // the words after vigil
	summary string
	subs    []string // its subcommands, if it has any
	flags   []compFlag
	args    argKind
	words   []string // with argsWords
}

// completionSpecs runs each command and subcommand with -h, its output
// discarded, and records the flag set it builds: the completion scripts
// offer exactly the flags the commands parse.
func completionSpecs(ctx context.Context) ([]compCommand, error) {
	var specs []compCommand
	top := compCommand{summary: "anomaly detection for industrial IoT telemetry", args: argsWords}
	for _, c := range commands() {
		top.words = append(top.words, c.name)
	}
	top.words = append(top.words, "help")
	specs = append(specs, top)
	for _, c := range commands() {
		if len(c.subs) > 0 {
			specs = append(specs, compCommand{path: c.name, summary: c.summary, subs: c.subs, args: argsWords, words: c.subs})
		}
		lines := [][]string{nil}
		if len(c.subs) > 0 {
			lines = nil
			for _, s := range c.subs {
				lines = append(lines, []string{s})
			}
		}
		for _, sub := range lines {
			var fs *flag.FlagSet
			var synopsis string
			e := &env{
				stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard,
				log:     slog.New(slog.DiscardHandler),
				onFlags: func(f *flag.FlagSet, s string) { fs, synopsis = f, s },
			}
			if err := c.run(ctx, e, append(slices.Clone(sub), "-h")); err != nil && !errors.Is(err, flag.ErrHelp) {
				return nil, fmt.Errorf("BUG: %s -h: %w", strings.Join(append([]string{c.name}, sub...), " "), err)
			}
			if fs == nil {
				return nil, fmt.Errorf("BUG: %s -h built no flag set", c.name)
			}
			spec := compCommand{path: strings.Join(append([]string{c.name}, sub...), " "), summary: c.summary, args: argsOf(synopsis)}
			fs.VisitAll(func(f *flag.Flag) {
				name, usage := flag.UnquoteUsage(f)
				bf, isBool := f.Value.(interface{ IsBoolFlag() bool })
				spec.flags = append(spec.flags, compFlag{
					name:  f.Name,
					value: !(isBool && bf.IsBoolFlag()),
					file:  name == "file",
					usage: firstClause(usage),
				})
			})
			switch c.name {
			case "completion":
				spec.args, spec.words = argsWords, []string{"bash", "zsh", "fish"}
			}
			specs = append(specs, spec)
		}
	}
	help := compCommand{path: "help", summary: "show a command's flags or a help topic", args: argsWords}
	for _, t := range helpTopics() {
		help.words = append(help.words, t.name)
	}
	for _, c := range commands() {
		help.words = append(help.words, c.name)
	}
	return append(specs, help), nil
}

// argsOf reads what the arguments are from a synopsis: its last word
// outside parentheses, FILE, FILE..., LOG... or DIR.
func argsOf(synopsis string) argKind {
	if i := strings.IndexByte(synopsis, '('); i >= 0 {
		synopsis = synopsis[:i]
	}
	words := strings.Fields(synopsis)
	if len(words) == 0 {
		return argsNone
	}
	switch strings.TrimSuffix(words[len(words)-1], "...") {
	case "FILE", "LOG":
		if len(words) >= 2 && strings.HasPrefix(words[len(words)-2], "--") {
			return argsNone // "--config FILE": a flag's value
		}
		return argsFiles
	case "DIR":
		return argsDirs
	}
	return argsNone
}

// firstClause is a usage text up to its first parenthesis, colon or
// sentence end: short enough for a completion menu.
func firstClause(s string) string {
	if i := strings.IndexAny(s, "(:;"); i > 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

func (c compCommand) flagNames() []string {
	var names []string
	for _, f := range c.flags {
		names = append(names, "--"+f.name)
	}
	return names
}

// bashCompletion is a bash completion script (bash 4 or later).
func bashCompletion(specs []compCommand) string {
	var b strings.Builder
	b.WriteString("# bash completion for vigil; generated by \"vigil completion bash\".\n")
	b.WriteString("# Load it with: source <(vigil completion bash)\n")
	b.WriteString("_vigil() {\n")
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n")
	b.WriteString("\tlocal path=vigil i\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tcase \"$path ${COMP_WORDS[i]}\" in\n\t\t")
	var paths []string
	for _, s := range specs {
		if s.path != "" {
			paths = append(paths, bashQuote("vigil "+s.path))
		}
	}
	b.WriteString(strings.Join(paths, " | "))
	b.WriteString(") path=\"$path ${COMP_WORDS[i]}\" ;;\n\t\tesac\n\tdone\n")
	// Flag values.
	b.WriteString("\tcase \"$path $prev\" in\n")
	var files, values []string
	for _, s := range specs {
		for _, f := range s.flags {
			for _, dash := range []string{"-", "--"} {
				w := bashQuote("vigil " + s.path + " " + dash + f.name)
				switch {
				case f.file:
					files = append(files, w)
				case f.value:
					values = append(values, w)
				}
			}
		}
	}
	if len(files) > 0 {
		fmt.Fprintf(&b, "\t%s)\n\t\tCOMPREPLY=($(compgen -f -- \"$cur\"))\n\t\treturn ;;\n", strings.Join(files, " | "))
	}
	if len(values) > 0 {
		fmt.Fprintf(&b, "\t%s)\n\t\treturn ;;\n", strings.Join(values, " | "))
	}
	b.WriteString("\tesac\n")
	// Flags.
	b.WriteString("\tif [[ $cur == -* ]]; then\n\t\tcase \"$path\" in\n")
	for _, s := range specs {
		if len(s.flags) > 0 {
			fmt.Fprintf(&b, "\t\t%s) COMPREPLY=($(compgen -W %s -- \"$cur\")) ;;\n", bashQuote("vigil "+s.path), bashQuote(strings.Join(s.flagNames(), " ")))
		}
	}
	b.WriteString("\t\tesac\n\t\treturn\n\tfi\n")
	// Arguments.
	b.WriteString("\tcase \"$path\" in\n")
	for _, s := range specs {
		p := bashQuote(strings.TrimSpace("vigil " + s.path))
		switch s.args {
		case argsFiles:
			fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n", p)
		case argsDirs:
			fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -d -- \"$cur\")) ;;\n", p)
		case argsWords:
			fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -W %s -- \"$cur\")) ;;\n", p, bashQuote(strings.Join(s.words, " ")))
		}
	}
	b.WriteString("\tesac\n}\n")
	b.WriteString("complete -o filenames -F _vigil vigil\n")
	return b.String()
}

// bashQuote single-quotes s for sh.
func bashQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshCompletion is a zsh completion script: a #compdef function that
// describes each command and flag.
func zshCompletion(specs []compCommand) string {
	var b strings.Builder
	b.WriteString("#compdef vigil\n# zsh completion for vigil; generated by \"vigil completion zsh\".\n")
	b.WriteString("# Put it in a directory of $fpath as _vigil, or load it with: source <(vigil completion zsh)\n\n")
	b.WriteString("_vigil() {\n\tlocal p=vigil n=1 w\n")
	b.WriteString("\tfor w in \"${(@)words[2,CURRENT-1]}\"; do\n\t\tcase \"$p $w\" in\n\t\t(")
	var paths []string
	for _, s := range specs {
		if s.path != "" {
			paths = append(paths, zshQuote("vigil "+s.path))
		}
	}
	b.WriteString(strings.Join(paths, " | "))
	b.WriteString(") p=\"$p $w\"; (( n++ )) ;;\n\t\tesac\n\tdone\n")
	b.WriteString("\t# Let _arguments see the words after the command path only.\n")
	b.WriteString("\twords=(\"$p\" \"${(@)words[n+1,-1]}\")\n\t(( CURRENT -= n - 1 ))\n")
	b.WriteString("\tcase $p in\n")
	for _, s := range specs {
		fmt.Fprintf(&b, "\t(%s)\n\t\t_arguments -s", zshQuote(strings.TrimSpace("vigil "+s.path)))
		for _, f := range s.flags {
			spec := "--" + f.name
			if f.value {
				spec += "="
			}
			spec += "[" + zshDesc(f.usage) + "]"
			switch {
			case f.file:
				spec += ":file:_files"
			case f.value:
				spec += ":value: "
			}
			fmt.Fprintf(&b, " \\\n\t\t\t%s", zshQuote(spec))
		}
		switch s.args {
		case argsFiles:
			fmt.Fprintf(&b, " \\\n\t\t\t%s", zshQuote("*:file:_files"))
		case argsDirs:
			fmt.Fprintf(&b, " \\\n\t\t\t%s", zshQuote("1:directory:_files -/"))
		case argsWords:
			fmt.Fprintf(&b, " \\\n\t\t\t%s", zshQuote("1:"+zshDesc(cmp.Or(s.path, "command"))+":("+strings.Join(s.words, " ")+")"))
		}
		b.WriteString("\n\t\t;;\n")
	}
	b.WriteString("\tesac\n}\n\n")
	b.WriteString("if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n\t_vigil \"$@\"\nelse\n\tcompdef _vigil vigil\nfi\n")
	return b.String()
}

func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshDesc keeps the characters _arguments gives a meaning out of a
// description.
func zshDesc(s string) string {
	return strings.NewReplacer("[", "(", "]", ")", ":", " ", "\\", "/").Replace(s)
}

// fishCompletion is a fish completion script.
func fishCompletion(specs []compCommand) string {
	var b strings.Builder
	b.WriteString("# fish completion for vigil; generated by \"vigil completion fish\".\n")
	b.WriteString("# Save it as ~/.config/fish/completions/vigil.fish, or: vigil completion fish | source\n")
	b.WriteString("complete -c vigil -f\n")
	var top []string
	for _, s := range specs {
		if s.path == "" {
			top = s.words
		}
	}
	for _, s := range specs {
		if s.path == "" {
			continue
		}
		cond := fishCond(s.path, top, specs)
		if !strings.Contains(s.path, " ") {
			fmt.Fprintf(&b, "complete -c vigil -n __fish_use_subcommand -a %s -d %s\n", s.path, fishQuote(s.summary))
		}
		for _, f := range s.flags {
			fmt.Fprintf(&b, "complete -c vigil -n %s -l %s", fishQuote(cond), f.name)
			switch {
			case f.file:
				b.WriteString(" -r -F")
			case f.value:
				b.WriteString(" -x")
			}
			fmt.Fprintf(&b, " -d %s\n", fishQuote(f.usage))
		}
		switch s.args {
		case argsFiles:
			fmt.Fprintf(&b, "complete -c vigil -n %s -F\n", fishQuote(cond))
		case argsDirs:
			fmt.Fprintf(&b, "complete -c vigil -n %s -x -a '(__fish_complete_directories)'\n", fishQuote(cond))
		case argsWords:
			fmt.Fprintf(&b, "complete -c vigil -n %s -x -a %s\n", fishQuote(cond), fishQuote(strings.Join(s.words, " ")))
		}
	}
	return b.String()
}

// fishCond is the condition under which the command line is path: its
// words seen and, for a command with subcommands, none of them yet.
func fishCond(path string, top []string, specs []compCommand) string {
	words := strings.Fields(path)
	cond := "__fish_seen_subcommand_from " + words[0]
	for _, w := range words[1:] {
		cond += "; and __fish_seen_subcommand_from " + w
	}
	for _, s := range specs {
		if s.path == path && len(s.subs) > 0 {
			cond += "; and not __fish_seen_subcommand_from " + strings.Join(s.subs, " ")
		}
	}
	return cond
}

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

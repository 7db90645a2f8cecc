// Package cli is the small command framework behind cmd/node-installer: subcommands with pflag flag
// sets, every flag also settable from an environment variable (for use in a Job spec), errors printed
// as one line on stderr with nothing on stdout, command-line mistakes told apart from failures
// (ErrUsage), and --version.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/wasmkube/wasmkube/internal/version"
)

// Streams are the standard streams a command writes to.
type Streams struct {
	Out    io.Writer
	ErrOut io.Writer
}

// LookupEnv reads one environment variable; os.LookupEnv in main, a map in tests.
type LookupEnv func(key string) (string, bool)

// Command is one subcommand.
type Command struct {
	// Name is the word that selects the command, e.g. "detect".
	Name string
	// Short is a one-line description for the usage text.
	Short string
	// Run executes the command with the arguments that follow its name.
	Run func(ctx context.Context, args []string, env LookupEnv, streams Streams) error
}

// ErrHelp is returned when the user asked for usage text; main exits 0 for it.
var ErrHelp = pflag.ErrHelp

// ErrUsage marks a mistake in the command line: an unknown command or flag, a flag value that does not
// parse, a missing or unexpected argument. Errors from Dispatch and Parse wrap it; commands make their
// own with Usagef. Programs exit with a code of their own for it (the node-installer: 2).
var ErrUsage = errors.New("usage error")

// usageError is an error in the command line; it matches ErrUsage.
type usageError struct{ err error }

func (e usageError) Error() string        { return e.err.Error() }
func (e usageError) Unwrap() error        { return e.err }
func (e usageError) Is(target error) bool { return target == ErrUsage }

// Usagef returns a command-line error (errors.Is(err, ErrUsage)) with a formatted message.
func Usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Dispatch finds the subcommand named by args[0] and runs it. "--version" prints the program's name
// and build (internal/version) on Out.
func Dispatch(ctx context.Context, program string, commands []Command, args []string, env LookupEnv, streams Streams) error {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	usage := func() {
		fmt.Fprintf(streams.ErrOut, "Usage: %s COMMAND [FLAGS]\n\nCommands:\n", program)
		for _, c := range commands {
			fmt.Fprintf(streams.ErrOut, "  %-18s %s\n", c.Name, c.Short)
		}
		fmt.Fprintf(streams.ErrOut, "\nRun '%s COMMAND --help' for a command's flags.\n", program)
	}
	if len(args) == 0 {
		usage()
		return Usagef("no command given")
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage()
		return ErrHelp
	case "--version":
		_, err := fmt.Fprintf(streams.Out, "%s %s\n", program, version.Get())
		return err
	}
	for _, c := range commands {
		if c.Name == args[0] {
			return c.Run(ctx, args[1:], env, streams)
		}
	}
	usage()
	return Usagef("unknown command %q", args[0])
}

// EnvName is the environment variable that sets a flag: WASMKUBE_ plus the flag name in upper
// snake case (--shim-name -> WASMKUBE_SHIM_NAME).
func EnvName(flag string) string {
	return "WASMKUBE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Parse parses args into fs, then fills every flag not given on the command line from its
// environment variable (see EnvName). Slice flags take a comma-separated value from the environment.
// Flag usage text names the variable, so `--help` documents it. Errors other than ErrHelp wrap ErrUsage.
func Parse(fs *pflag.FlagSet, args []string, env LookupEnv) error {
	fs.VisitAll(func(f *pflag.Flag) {
		f.Usage = fmt.Sprintf("%s (env %s)", f.Usage, EnvName(f.Name))
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if env == nil {
		return nil
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		v, ok := env(EnvName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s: %w", EnvName(f.Name), err))
		}
	})
	if len(errs) > 0 {
		return usageError{errors.Join(errs...)}
	}
	return nil
}

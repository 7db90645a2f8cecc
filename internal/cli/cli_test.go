package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestUsageErrors: command-line mistakes wrap ErrUsage, so that programs exit with their usage code;
// a command's own failure does not.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	failure := errors.New("the command ran and failed")
	cmds := []Command{{Name: "run", Run: func(_ context.Context, args []string, env LookupEnv, _ Streams) error {
		fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		n := fs.Int("count", 0, "a number")
		if err := Parse(fs, args, env); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return Usagef("unexpected arguments %q", fs.Args())
		}
		if *n < 0 {
			return failure
		}
		return nil
	}}}
	env := func(vars map[string]string) LookupEnv {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		usage bool
		err   error
	}{
		{name: "ok", args: []string{"run", "--count=1"}},
		{name: "no command", args: nil, usage: true},
		{name: "unknown command", args: []string{"walk"}, usage: true},
		{name: "unknown flag", args: []string{"run", "--counts=1"}, usage: true},
		{name: "bad value", args: []string{"run", "--count=many"}, usage: true},
		{name: "bad environment value", args: []string{"run"}, env: map[string]string{"WASMKUBE_COUNT": "many"}, usage: true},
		{name: "unexpected argument", args: []string{"run", "extra"}, usage: true},
		{name: "help", args: []string{"run", "--help"}, err: ErrHelp},
		{name: "failure", args: []string{"run", "--count=-1"}, err: failure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := Dispatch(context.Background(), "prog", cmds, tt.args, env(tt.env), Streams{Out: &out, ErrOut: &errOut})
			if got := errors.Is(err, ErrUsage); got != tt.usage {
				t.Errorf("errors.Is(%v, ErrUsage) = %v, want %v", err, got, tt.usage)
			}
			if tt.err != nil && !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
			if !tt.usage && tt.err == nil && err != nil {
				t.Errorf("err = %v, want nil", err)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := Dispatch(context.Background(), "prog", nil, []string{"--version"}, nil, Streams{Out: &out, ErrOut: &out}); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "prog ") || !strings.HasSuffix(s, ")\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("--version printed %q, want one line: prog <version> (...)", s)
	}
}

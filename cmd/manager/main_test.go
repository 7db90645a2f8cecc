package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		args    []string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		"defaults": {
			args: []string{"--installer-image=reg/installer:1"},
			check: func(t *testing.T, c config) {
				if c.Jobs.Namespace != "wasmkube-system" || c.Jobs.BackoffLimit != 3 || c.HandlerDeadline != 2*time.Minute || !c.LeaderElection ||
					c.Jobs.VerifyInterval != 10*time.Minute {
					t.Fatalf("defaults: %+v", c)
				}
			},
		},
		"overrides": {
			args: []string{"--installer-image=i", "--namespace=ops", "--job-ttl=60", "--job-backoff-limit=1",
				"--handler-deadline=30s", "--leader-elect=false", "--installer-restart=signal",
				"--installer-shim-dir=/srv/wk/bin", "--installer-state-file=/srv/wk/state.json"},
			check: func(t *testing.T, c config) {
				if c.Jobs.Namespace != "ops" || c.Jobs.TTLSecondsAfterFinished != 60 || c.Jobs.BackoffLimit != 1 ||
					c.HandlerDeadline != 30*time.Second || c.LeaderElection || c.Jobs.Restart != "signal" ||
					c.Jobs.ShimDir != "/srv/wk/bin" || c.Jobs.StateFile != "/srv/wk/state.json" {
					t.Fatalf("overrides: %+v", c)
				}
			},
		},
		"installer config": {
			args: []string{"--installer-image=i", "--installer-restart=signal",
				"--installer-config=../../internal/controller/testdata/installer-config.yaml"},
			check: func(t *testing.T, c config) {
				j := c.Jobs
				if j.Restart != "signal" || j.PriorityClassName != "wasmkube-installer" || len(j.Tolerations) != 2 ||
					len(j.NodeOverrides) != 2 || j.NodeOverrides[1].Restart != "systemd" {
					t.Fatalf("installer config: %+v", j)
				}
			},
		},
		"missing installer config": {args: []string{"--installer-image=i", "--installer-config=testdata/nope.yaml"},
			wantErr: "--installer-config: read installer config: open testdata/nope.yaml: no such file or directory"},
		"bad installer config": {args: []string{"--installer-image=i", "--installer-config=testdata/bad-installer-config.yaml"},
			wantErr: `--installer-config: installer config testdata/bad-installer-config.yaml: invalid installer config: nodeOverrides[1]: restart: unknown restart method "reboot"`},
		"bad restart":              {args: []string{"--installer-image=i", "--installer-restart=reboot"}, wantErr: `--installer-restart: unknown restart method "reboot": use systemd, signal or none`},
		"image required":           {args: nil, wantErr: "--installer-image is required"},
		"bad pull policy":          {args: []string{"--installer-image=i", "--installer-pull-policy=Sometimes"}, wantErr: "want Always, IfNotPresent or Never"},
		"empty namespace":          {args: []string{"--installer-image=i", "--namespace="}, wantErr: "--namespace must not be empty"},
		"negative verify interval": {args: []string{"--installer-image=i", "--verify-interval=-1m"}, wantErr: "--verify-interval -1m0s"},
		"verify interval": {args: []string{"--installer-image=i", "--verify-interval=0"}, check: func(t *testing.T, c config) {
			if c.Jobs.VerifyInterval != 0 {
				t.Fatalf("verify interval %s, want 0 (off)", c.Jobs.VerifyInterval)
			}
		}},
		"unknown flag":   {args: []string{"--installer-image=i", "--nope"}, wantErr: "unknown flag"},
		"stray argument": {args: []string{"--installer-image=i", "extra"}, wantErr: "unexpected arguments"},
		"version needs nothing else": {args: []string{"--version"}, check: func(t *testing.T, c config) {
			if !c.version {
				t.Fatal("--version not seen")
			}
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.HasPrefix(s, "manager ") || strings.Count(s, "\n") != 1 {
		t.Errorf("--version printed %q, want one line: manager <version> (...)", s)
	}
}

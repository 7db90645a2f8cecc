package restart

import (
	"os"
	"testing"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	tail := " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 0 0" // fields 5-21, starttime (22), 23, 24
	tests := map[string]struct {
		stat    string
		want    Process
		wantErr bool
	}{
		"plain":           {stat: "123 (containerd) S 1" + tail, want: Process{PID: 123, PPID: 1, Comm: "containerd", State: 'S', StartTime: 4242}},
		"zombie":          {stat: "7 (containerd) Z 1" + tail, want: Process{PID: 7, PPID: 1, Comm: "containerd", State: 'Z', StartTime: 4242}},
		"comm with space": {stat: "9 (a b) R 2" + tail, want: Process{PID: 9, PPID: 2, Comm: "a b", State: 'R', StartTime: 4242}},
		"comm with paren": {stat: "9 (x) S (y) S 3" + tail, want: Process{PID: 9, PPID: 3, Comm: "x) S (y", State: 'S', StartTime: 4242}},
		"truncated":       {stat: "9 (x) S 3 0 0", wantErr: true},
		"no comm":         {stat: "9 x S 3" + tail, wantErr: true},
		"bad pid":         {stat: "z (x) S 3" + tail, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := parseStat([]byte(tc.stat))
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseStat(%q) error = %v, want error %t", tc.stat, err, tc.wantErr)
			}
			if err == nil && (got.PID != tc.want.PID || got.PPID != tc.want.PPID || got.Comm != tc.want.Comm || got.State != tc.want.State || got.StartTime != tc.want.StartTime) {
				t.Errorf("parseStat(%q) = %+v, want %+v", tc.stat, got, tc.want)
			}
		})
	}
}

func TestProcessNames(t *testing.T) {
	t.Parallel()
	p := Process{Args: []string{"containerd", "--config", "/etc/containerd/config.toml", "--address=/run/k3s/containerd.sock"}}
	tests := map[string]bool{
		"/etc/containerd/config.toml":     true,
		"/run/k3s/containerd.sock":        true,
		"/etc/containerd":                 false,
		"config.toml":                     false,
		"/run/containerd/containerd.sock": false,
	}
	for s, want := range tests {
		if got := p.Names(s); got != want {
			t.Errorf("Names(%q) = %t, want %t", s, got, want)
		}
	}
}

func TestReadProcessSelf(t *testing.T) {
	t.Parallel()
	p, err := ReadProcess("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != os.Getpid() || p.PPID != os.Getppid() || p.Zombie() || len(p.Args) == 0 || p.Args[0] != os.Args[0] {
		t.Errorf("ReadProcess(self) = %+v; want PID %d, PPID %d, args %q", p, os.Getpid(), os.Getppid(), os.Args)
	}
	if _, err := ReadProcess("/proc", -1); err == nil {
		t.Error("ReadProcess(-1) succeeded")
	}
}

package platform

import (
	"runtime"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Platform
		wantErr bool
	}{
		{in: "linux/amd64", want: Platform{OS: "linux", Architecture: "amd64"}},
		{in: "linux/arm64", want: Platform{OS: "linux", Architecture: "arm64"}},
		{in: "linux/arm/v7", want: Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{in: "linux", wantErr: true},
		{in: "linux/", wantErr: true},
		{in: "/amd64", wantErr: true},
		{in: "linux/arm/v7/x", wantErr: true},
		{in: "linux/ amd64", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		got, err := Parse(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, error %t", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("Parse(%q).String() = %q", tc.in, got.String())
		}
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"linux/amd64", "linux/amd64"},
		{"Linux/X86_64", "linux/amd64"},
		{"linux/amd64/v1", "linux/amd64"},
		{"linux/amd64/v3", "linux/amd64/v3"},
		{"linux/aarch64", "linux/arm64"},
		{"linux/arm64/v8", "linux/arm64"},
		{"linux/arm64/v9", "linux/arm64/v9"},
		{"linux/arm", "linux/arm/v7"},
		{"linux/armhf", "linux/arm/v7"},
		{"linux/armel", "linux/arm/v6"},
		{"linux/i386", "linux/386"},
	}
	for _, tc := range tests {
		p, err := Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Normalize().String(); got != tc.want {
			t.Errorf("%s normalized = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	parse := func(ss ...string) []Platform {
		var out []Platform
		for _, s := range ss {
			p, err := Parse(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	tests := []struct {
		name      string
		available []string
		want      string
		index     int
	}{
		{"exact", []string{"linux/amd64", "linux/arm64"}, "linux/arm64", 1},
		{"none", []string{"linux/amd64", "linux/arm64"}, "linux/s390x", -1},
		{"other os", []string{"windows/amd64"}, "linux/amd64", -1},
		{"empty list", nil, "linux/amd64", -1},
		{"arm64 v8 declared", []string{"linux/arm64/v8"}, "linux/arm64", 0},
		{"arm64 node with variant", []string{"linux/arm64"}, "linux/arm64/v8", 0},
		{"aarch64 node", []string{"linux/amd64", "linux/arm64"}, "linux/aarch64", 1},
		{"arm node without variant takes v7", []string{"linux/arm/v6", "linux/arm/v7"}, "linux/arm", 1},
		{"arm v7 takes highest lower", []string{"linux/arm/v5", "linux/arm/v6"}, "linux/arm/v7", 1},
		{"arm v6 refuses v7", []string{"linux/arm/v7"}, "linux/arm/v6", -1},
		{"arm exact beats lower", []string{"linux/arm/v6", "linux/arm/v7", "linux/arm/v5"}, "linux/arm/v7", 1},
		{"arm64 does not run arm", []string{"linux/arm/v7"}, "linux/arm64", -1},
		{"amd64 plain refuses v3", []string{"linux/amd64/v3"}, "linux/amd64", -1},
		{"amd64 v3 takes v2 over v1", []string{"linux/amd64", "linux/amd64/v2"}, "linux/amd64/v3", 1},
		{"amd64 v3 takes plain", []string{"linux/amd64"}, "linux/amd64/v3", 0},
		{"first of equals", []string{"linux/amd64", "linux/amd64/v1"}, "linux/amd64", 0},
		// Entries (and nodes) that spell the architecture the way uname or Debian do are the same
		// platform, on both sides of the comparison.
		{"x86_64 entry", []string{"linux/aarch64", "linux/x86_64"}, "linux/amd64", 1},
		{"aarch64 entry", []string{"linux/x86_64", "linux/aarch64"}, "linux/arm64", 1},
		{"aarch64 v8 entry", []string{"linux/aarch64/v8"}, "linux/arm64", 0},
		{"x86_64 node", []string{"linux/arm64", "linux/amd64"}, "linux/x86_64", 1},
		{"upper case entry", []string{"Linux/AMD64"}, "linux/amd64", 0},
		{"armhf entry for arm v7", []string{"linux/armhf"}, "linux/arm/v7", 0},
		{"armel entry for arm v7", []string{"linux/armel"}, "linux/arm/v7", 0},
		{"armhf node refuses armel over armhf", []string{"linux/armel", "linux/arm/v7"}, "linux/armhf", 1},
		{"armel node refuses armhf", []string{"linux/armhf"}, "linux/armel", -1},
		{"amd64 does not run 386", []string{"linux/386"}, "linux/amd64", -1},
		{"i386 entry for 386", []string{"linux/i386"}, "linux/386", 0},
	}
	for _, tc := range tests {
		if got := Match(parse(tc.available...), parse(tc.want)[0]); got != tc.index {
			t.Errorf("%s: Match(%v, %s) = %d, want %d", tc.name, tc.available, tc.want, got, tc.index)
		}
	}
}

func TestHost(t *testing.T) {
	p := Host()
	if p.OS != runtime.GOOS || p.Architecture != runtime.GOARCH {
		t.Fatalf("Host() = %s, want %s/%s", p, runtime.GOOS, runtime.GOARCH)
	}
	if (p.Variant != "") != (runtime.GOARCH == "arm") {
		t.Errorf("Host() variant %q on %s", p.Variant, runtime.GOARCH)
	}
	if Match([]Platform{p}, p) != 0 {
		t.Errorf("the host platform does not match itself")
	}
}

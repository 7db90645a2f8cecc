package shimsource

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestDockerKeychainResolve(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	config := `{"auths":{
		"https://index.docker.io/v1/": {"auth": "` + b64("hub:pw") + `"},
		"registry.example:5000": {"username": "plain", "password": "pw"},
		"https://registry.example:5000/team/": {"auth": "` + b64("team:pw") + `"},
		"registry.example:5000/team/special": {"identitytoken": "tok"},
		"Other.Example": {"auth": "` + b64("other:pw") + `"}
	},
	"credsStore": "desktop"}`
	kc, err := parseDockerKeychain([]byte(config), "test")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		repo     string
		wantUser string // "" = anonymous
		wantTok  string
	}{
		{repo: "library/alpine", wantUser: "hub"},
		{repo: "docker.io/spinframework/shim", wantUser: "hub"},
		{repo: "registry.example:5000/shims/spin", wantUser: "plain"},
		{repo: "registry.example:5000/team/spin", wantUser: "team"},
		{repo: "registry.example:5000/teamwork/spin", wantUser: "plain"},
		{repo: "registry.example:5000/team/special", wantTok: "tok"},
		{repo: "registry.example:5000/team/special/sub", wantTok: "tok"},
		{repo: "other.example/x", wantUser: "other"},
		{repo: "registry.example/x"},
		{repo: "ghcr.io/spinframework/containerd-shim-spin"},
	}
	for _, tc := range tests {
		repo, err := name.NewRepository(tc.repo)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(repo)
		if err != nil {
			t.Fatal(err)
		}
		if tc.wantUser == "" && tc.wantTok == "" {
			if a != authn.Anonymous {
				t.Errorf("%s: got credentials, want anonymous", tc.repo)
			}
			continue
		}
		cfg, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != tc.wantUser || cfg.IdentityToken != tc.wantTok {
			t.Errorf("%s: user %q token %q, want %q %q", tc.repo, cfg.Username, cfg.IdentityToken, tc.wantUser, tc.wantTok)
		}
	}
}

func TestParseDockerKeychainErrors(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		``,
		`[]`,
		`{"auths": []}`,
		`{"auths": {"r": {"auth": "not base64!"}}}`,
		`{"auths": {"r": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("nocolon")) + `"}}}`,
	} {
		if _, err := parseDockerKeychain([]byte(in), "test"); err == nil {
			t.Errorf("parseDockerKeychain(%q) succeeded", in)
		} else {
			t.Logf("error (expected): %v", err)
		}
	}
}

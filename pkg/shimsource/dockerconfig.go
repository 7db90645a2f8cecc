package shimsource

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerAuth is one entry of a docker config.json "auths" map.
type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// dockerKeychain resolves credentials from the "auths" of one docker config file. Credential
// helpers (credsStore, credHelpers) are ignored: a pull secret carries the credentials inline.
//
// It is written here rather than taken from go-containerregistry's authn because, as of v0.22:
// authn.DefaultKeychain reads only $DOCKER_CONFIG or $HOME (process-wide state, where the installer
// is given one mounted file and the manager parses a Secret's bytes); the docker/cli config loader it
// uses keeps registry keys only, dropping the repository-scoped keys ("registry.example/team") that
// a kubelet honours, and reads no legacy .dockercfg; and pkg/authn/kubernetes, which has the
// kubelet's matching, would link client-go's clientset into the node-installer and treats case and
// the docker.io aliases differently from the kubelet.
type dockerKeychain struct {
	origin string
	auths  map[string]authn.AuthConfig // normalized key -> credentials
}

// loadDockerKeychain reads a docker config.json (kubernetes.io/dockerconfigjson) or a legacy
// .dockercfg (kubernetes.io/dockercfg) file.
func loadDockerKeychain(path string) (*dockerKeychain, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read docker config: %w", err)
	}
	return parseDockerKeychain(data, path)
}

// parseDockerKeychain parses docker config content; origin names it in errors.
func parseDockerKeychain(data []byte, origin string) (*dockerKeychain, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("parse docker config %s: %w", origin, err)
	}
	raw := data
	if a, ok := top["auths"]; ok {
		raw = a
	}
	var entries map[string]dockerAuth
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("parse docker config %s: want {\"auths\": {REGISTRY: {\"auth\": ...}}}: %w", origin, err)
	}
	kc := &dockerKeychain{origin: origin, auths: map[string]authn.AuthConfig{}}
	for key, e := range entries {
		ac := authn.AuthConfig{Username: e.Username, Password: e.Password,
			IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
		if e.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("docker config %s: entry %q: \"auth\" is not base64: %w", origin, key, err)
			}
			user, pass, ok := strings.Cut(string(dec), ":")
			if !ok {
				return nil, fmt.Errorf("docker config %s: entry %q: \"auth\" does not decode to user:password", origin, key)
			}
			ac.Username, ac.Password = user, pass
		}
		kc.auths[normalizeAuthKey(key)] = ac
	}
	return kc, nil
}

// normalizeAuthKey turns "https://index.docker.io/v1/", "docker.io" or "registry.example/ns/"
// into a host[/path] key comparable with a repository name.
func normalizeAuthKey(key string) string {
	k := strings.TrimSpace(key)
	if i := strings.Index(k, "://"); i >= 0 {
		k = k[i+3:]
	}
	k = strings.TrimRight(k, "/")
	for _, suffix := range []string{"/v1", "/v2"} {
		k = strings.TrimSuffix(k, suffix)
	}
	host, rest, _ := strings.Cut(k, "/")
	host = strings.ToLower(host)
	switch host {
	case "docker.io", "registry-1.docker.io":
		host = name.DefaultRegistry
	}
	if rest == "" {
		return host
	}
	return host + "/" + rest
}

// Resolve implements authn.Keychain: the longest key that is the registry or a path prefix of
// the repository wins; no match means anonymous.
func (k *dockerKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	full := target.RegistryStr()
	if repo, ok := target.(name.Repository); ok {
		full = repo.RegistryStr() + "/" + repo.RepositoryStr()
	}
	best, found := "", false
	for key := range k.auths {
		if (key == full || strings.HasPrefix(full, key+"/")) && len(key) >= len(best) {
			best, found = key, true
		}
	}
	if !found {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(k.auths[best]), nil
}

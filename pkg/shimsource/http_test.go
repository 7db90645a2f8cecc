package shimsource

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// httpFixture serves the same downloads over TLS and over plain http.
type httpFixture struct {
	files      map[string][]byte
	tls, plain *httptest.Server
	tlsClient  *http.Client // trusts the TLS server; also used against the plain one
}

func newHTTPFixture(t *testing.T) *httpFixture {
	t.Helper()
	bin := []byte(binary("http"))
	f := &httpFixture{files: map[string][]byte{
		"/releases/containerd-shim-spin-v2": bin,
		"/download":                         bin,
		"/shim.tar.gz": gz(t, tarOf(t, dirEntry("bin/"), file("bin/containerd-shim-spin-v2", string(bin)),
			file("README.md", "readme"), file("LICENSE", "license"))),
		"/one.tar.gz":       gz(t, tarOf(t, file("./shim-binary", string(bin)))),
		"/plain.tar":        tarOf(t, file("containerd-shim-spin-v2", string(bin))),
		"/two-shims.tar.gz": gz(t, tarOf(t, file("containerd-shim-spin-v2", "a"), file("containerd-shim-slight-v1", "b"))),
		"/same-base.tar.gz": gz(t, tarOf(t, file("amd64/containerd-shim-spin-v2", "a"), file("arm64/containerd-shim-spin-v2", string(bin)))),
		"/no-shim.tar.gz":   gz(t, tarOf(t, file("a", "a"), file("b", "b"))),
		"/gzip-not-tar":     gz(t, bin),
		"/bomb.tar.gz":      gz(t, tarOf(t, file("containerd-shim-spin-v2", strings.Repeat("\x00", 4<<20)))),
	}}
	mux := http.NewServeMux()
	for p, b := range f.files {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			_, _ = w.Write(b)
		})
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(bin) })
	mux.HandleFunc("/secret", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusUnauthorized) })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "oops", http.StatusInternalServerError) })
	mux.HandleFunc("/chunked-big", func(w http.ResponseWriter, _ *http.Request) {
		for range 64 {
			_, _ = w.Write(make([]byte, 32<<10))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/to-plain", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, f.plain.URL+"/releases/containerd-shim-spin-v2", http.StatusFound)
	})
	mux.HandleFunc("/to-tls", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, f.tls.URL+"/releases/containerd-shim-spin-v2", http.StatusFound)
	})
	f.tls = httptest.NewUnstartedServer(mux)
	f.tls.Config.ErrorLog = log.New(io.Discard, "", 0)
	f.tls.StartTLS()
	t.Cleanup(f.tls.Close)
	f.plain = httptest.NewServer(mux)
	t.Cleanup(f.plain.Close)
	f.tlsClient = f.tls.Client()
	return f
}

func TestHTTPFetch(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	bin := f.files["/download"]
	tests := []struct {
		name     string
		url      func() string
		sum      string // default: sha256 of the served file
		member   string
		insecure bool
		limit    int64
		wantFile string // "" when an error is expected
		wantErr  error
	}{
		{name: "raw binary", url: func() string { return f.tls.URL + "/releases/containerd-shim-spin-v2" },
			wantFile: "containerd-shim-spin-v2"},
		{name: "raw binary, uppercase checksum with prefix", url: func() string { return f.tls.URL + "/releases/containerd-shim-spin-v2" },
			sum: "sha256:" + strings.ToUpper(sha(bin)), wantFile: "containerd-shim-spin-v2"},
		{name: "raw binary, query string", url: func() string { return f.tls.URL + "/download?id=3" },
			wantFile: "download"},
		{name: "raw binary, URL without a file name", url: func() string { return f.tls.URL + "/" },
			sum: sha(bin), wantFile: "containerd-shim"},
		{name: "tar.gz, default member", url: func() string { return f.tls.URL + "/shim.tar.gz" }, wantFile: "containerd-shim-spin-v2"},
		{name: "tar.gz, member by base name", url: func() string { return f.tls.URL + "/shim.tar.gz" },
			member: "containerd-shim-spin-v2", wantFile: "containerd-shim-spin-v2"},
		{name: "tar.gz, member by path", url: func() string { return f.tls.URL + "/shim.tar.gz" },
			member: "/bin/containerd-shim-spin-v2", wantFile: "containerd-shim-spin-v2"},
		{name: "tar.gz, single file", url: func() string { return f.tls.URL + "/one.tar.gz" }, wantFile: "shim-binary"},
		{name: "plain tar", url: func() string { return f.tls.URL + "/plain.tar" }, wantFile: "containerd-shim-spin-v2"},
		{name: "tar.gz, same base name in two dirs, member by path", url: func() string { return f.tls.URL + "/same-base.tar.gz" },
			member: "arm64/containerd-shim-spin-v2", wantFile: "containerd-shim-spin-v2"},
		{name: "tar.gz, same base name in two dirs, base name is ambiguous", url: func() string { return f.tls.URL + "/same-base.tar.gz" },
			member: "containerd-shim-spin-v2"},
		{name: "tar.gz, two shims and no member", url: func() string { return f.tls.URL + "/two-shims.tar.gz" }},
		{name: "tar.gz, no shim-like file", url: func() string { return f.tls.URL + "/no-shim.tar.gz" }, wantErr: ErrNotFound},
		{name: "tar.gz, member missing", url: func() string { return f.tls.URL + "/shim.tar.gz" }, member: "containerd-shim-x", wantErr: ErrNotFound},
		{name: "member for a raw binary", url: func() string { return f.tls.URL + "/releases/containerd-shim-spin-v2" }, member: "x"},
		{name: "gzip that is not a tar", url: func() string { return f.tls.URL + "/gzip-not-tar" }},
		{name: "sha256 mismatch", url: func() string { return f.tls.URL + "/releases/containerd-shim-spin-v2" },
			sum: sha([]byte("other")), wantErr: ErrDigestMismatch},
		{name: "sha256 mismatch, archive", url: func() string { return f.tls.URL + "/shim.tar.gz" },
			sum: sha(bin), wantErr: ErrDigestMismatch},
		{name: "sha256 missing", url: func() string { return f.tls.URL + "/releases/containerd-shim-spin-v2" }, sum: "-"},
		{name: "sha256 malformed", url: func() string { return f.tls.URL + "/releases/containerd-shim-spin-v2" }, sum: "abc"},
		{name: "plain http refused", url: func() string { return f.plain.URL + "/releases/containerd-shim-spin-v2" },
			wantErr: ErrInsecure},
		{name: "plain http allowed", url: func() string { return f.plain.URL + "/releases/containerd-shim-spin-v2" },
			insecure: true, wantFile: "containerd-shim-spin-v2"},
		{name: "redirect to plain http refused", url: func() string { return f.tls.URL + "/to-plain" },
			sum: sha(bin), wantErr: ErrInsecure},
		{name: "redirect to https followed", url: func() string { return f.plain.URL + "/to-tls" },
			sum: sha(bin), insecure: true, wantFile: "to-tls"},
		{name: "other scheme", url: func() string { return "ftp://example.com/shim" }, sum: sha(bin)},
		{name: "not found", url: func() string { return f.tls.URL + "/nope" }, sum: sha(bin), wantErr: ErrNotFound},
		{name: "unauthorized", url: func() string { return f.tls.URL + "/secret" }, sum: sha(bin), wantErr: ErrUnauthorized},
		{name: "server error", url: func() string { return f.tls.URL + "/broken" }, sum: sha(bin)},
		{name: "content length over the cap", url: func() string { return f.tls.URL + "/releases/containerd-shim-spin-v2" },
			limit: 1024, wantErr: ErrTooLarge},
		{name: "chunked body over the cap", url: func() string { return f.tls.URL + "/chunked-big" },
			sum: sha(make([]byte, 64*32<<10)), limit: 1 << 20, wantErr: ErrTooLarge},
		{name: "archive member over the cap", url: func() string { return f.tls.URL + "/bomb.tar.gz" },
			limit: 1 << 20, wantErr: ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := tc.url()
			sum := tc.sum
			switch sum {
			case "":
				sum = sha(f.files[strings.TrimPrefix(strings.TrimPrefix(strings.SplitN(u, "?", 2)[0], f.tls.URL), f.plain.URL)])
			case "-":
				sum = ""
			}
			h := HTTP{URL: u, SHA256: sum, Member: tc.member, AllowInsecureHTTP: tc.insecure, Client: f.tlsClient, MaxBytes: tc.limit}
			dest := t.TempDir()
			a, err := h.Fetch(context.Background(), linuxAMD64, dest)
			if tc.wantFile == "" {
				if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
					t.Fatalf("Fetch = %+v, %v; want error %v", a, err, tc.wantErr)
				}
				t.Logf("error (expected): %v", err)
				requireEmptyDir(t, dest)
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			requireOnly(t, dest, tc.wantFile, bin)
			if a.File != filepath.Join(dest, tc.wantFile) || a.SHA256 != sha(bin) || a.Digest != "sha256:"+strings.ToLower(strings.TrimPrefix(sum, "sha256:")) ||
				a.Source != u || a.Platform != linuxAMD64 {
				t.Errorf("artifact %+v", a)
			}
		})
	}
}

// TestHTTPKeepsExistingBinary: a failed download leaves an installed binary of the same name
// byte for byte; a good one replaces it.
func TestHTTPKeepsExistingBinary(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	dest := t.TempDir()
	old := []byte("installed shim")
	if err := os.WriteFile(filepath.Join(dest, "containerd-shim-spin-v2"), old, 0o755); err != nil {
		t.Fatal(err)
	}
	h := HTTP{URL: f.tls.URL + "/releases/containerd-shim-spin-v2", SHA256: sha([]byte("wrong")), Client: f.tlsClient}
	if _, err := h.Fetch(context.Background(), linuxAMD64, dest); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Fetch error %v, want ErrDigestMismatch", err)
	}
	requireOnly(t, dest, "containerd-shim-spin-v2", old)
	h.SHA256 = sha(f.files["/download"])
	if _, err := h.Fetch(context.Background(), linuxAMD64, dest); err != nil {
		t.Fatal(err)
	}
	requireOnly(t, dest, "containerd-shim-spin-v2", f.files["/download"])
}

func TestHTTPCancelled(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dest := t.TempDir()
	h := HTTP{URL: f.tls.URL + "/releases/containerd-shim-spin-v2", SHA256: sha(f.files["/download"]), Client: f.tlsClient}
	if _, err := h.Fetch(ctx, linuxAMD64, dest); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch error %v, want context.Canceled", err)
	}
	requireEmptyDir(t, dest)
}

// TestHTTPRedactsPassword: a password in the URL appears neither in the artifact nor in errors.
func TestHTTPRedactsPassword(t *testing.T) {
	t.Parallel()
	f := newHTTPFixture(t)
	u := strings.Replace(f.tls.URL, "https://", "https://user:hunter2@", 1) + "/releases/containerd-shim-spin-v2"
	h := HTTP{URL: u, SHA256: sha(f.files["/download"]), Client: f.tlsClient}
	a, err := h.Fetch(context.Background(), linuxAMD64, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h.SHA256 = sha([]byte("wrong"))
	_, err = h.Fetch(context.Background(), linuxAMD64, t.TempDir())
	if err == nil {
		t.Fatal("Fetch with a wrong checksum succeeded")
	}
	for _, s := range []string{a.Source, err.Error()} {
		if strings.Contains(s, "hunter2") || !strings.Contains(s, "user:") {
			t.Errorf("%q: want the user with the password redacted", s)
		}
	}
}

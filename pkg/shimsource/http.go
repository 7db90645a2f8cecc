package shimsource

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/wasmkube/wasmkube/pkg/platform"
)

// HTTP downloads a shim binary, or a .tar.gz (or .tar) holding it, checked against a sha256.
type HTTP struct {
	// URL is an https:// URL; plain http is refused unless AllowInsecureHTTP, also on redirects.
	URL string
	// SHA256 is the mandatory hex sha256 of the downloaded file (the raw binary or the archive).
	SHA256 string
	// Member names the binary inside an archive: an entry path, or a base name matching one
	// entry. Default: the only regular file, or else the only containerd-shim-* file.
	Member string
	// AllowInsecureHTTP permits http:// URLs (air-gapped mirrors, tests).
	AllowInsecureHTTP bool
	// Client is the HTTP client (nil: a client with http.DefaultTransport).
	Client *http.Client
	// MaxBytes caps the download and the extracted binary (0: DefaultMaxBytes).
	MaxBytes int64
}

// Fetch downloads URL into a hidden temporary file in destDir, checks its sha256, and only then
// renames it (a raw binary) or extracts the member from it (an archive). The binary is named
// after the member's base name, or the URL path's last element for a raw binary. p is only
// recorded: an HTTP source is one download for one platform, chosen by the caller.
func (h HTTP) Fetch(ctx context.Context, p platform.Platform, destDir string) (Artifact, error) {
	return finish(h.Stage(ctx, p, destDir))
}

// Stage downloads, checks and extracts as Fetch does, and returns before the binary is synced
// and renamed.
func (h HTTP) Stage(ctx context.Context, p platform.Platform, destDir string) (*Staged, error) {
	u, want, err := h.check()
	if err != nil {
		return nil, err
	}
	src := u.Redacted() // no password in errors or in the result
	limit := maxBytes(h.MaxBytes)
	dl, err := newStaged(destDir, downloadName(u))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	defer dl.discard()
	if err := h.download(ctx, u, src, dl, limit); err != nil {
		return nil, err
	}
	got := dl.sum()
	if got != want {
		return nil, fmt.Errorf("download %s: sha256 is %s, expected %s; nothing installed: %w",
			src, got, want, ErrDigestMismatch)
	}
	a := Artifact{Digest: "sha256:" + got, Platform: p, Source: src}
	kind, err := sniff(dl.f)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	if kind == rawFile {
		if h.Member != "" {
			return nil, fmt.Errorf("download %s: member %q requested, but the file is not a tar or .tar.gz archive", src, h.Member)
		}
		a.SHA256 = got
		return dl.handOver(a, "download "+src), nil
	}
	member, err := h.pickMember(dl.f, kind)
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	bin, err := newStaged(destDir, path.Base(member))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	defer bin.discard()
	if err := extractMember(dl.f, kind, member, bin, limit); err != nil {
		return nil, fmt.Errorf("download %s: %w", src, err)
	}
	a.SHA256 = bin.sum()
	return bin.handOver(a, "download "+src), nil
}

// check validates URL scheme and checksum before any network access.
func (h HTTP) check() (*url.URL, string, error) {
	u, err := url.Parse(h.URL)
	if err != nil {
		return nil, "", fmt.Errorf("parse download URL: %w", err)
	}
	src := u.Redacted()
	switch u.Scheme {
	case "https":
	case "http":
		if !h.AllowInsecureHTTP {
			return nil, "", fmt.Errorf("download %s: plain http is refused; use https or allow insecure http: %w", src, ErrInsecure)
		}
	default:
		return nil, "", fmt.Errorf("download URL %q: want an https:// URL", src)
	}
	if u.Host == "" {
		return nil, "", fmt.Errorf("download URL %q: no host", src)
	}
	want := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(h.SHA256), "sha256:"))
	if b, err := hex.DecodeString(want); err != nil || len(b) != 32 {
		return nil, "", fmt.Errorf("download %s: sha256 %q is not 64 hex digits; a checksum is mandatory", src, h.SHA256)
	}
	return u, want, nil
}

func (h HTTP) download(ctx context.Context, u *url.URL, src string, dl *staged, limit int64) error {
	client := http.Client{}
	if h.Client != nil {
		client = *h.Client
	}
	inner := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" && !h.AllowInsecureHTTP {
			return fmt.Errorf("redirect to %s: plain http is refused: %w", req.URL.Redacted(), ErrInsecure)
		}
		if inner != nil {
			return inner(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", src, err)
	}
	req.Header.Set("User-Agent", "wasmkube-shimsource")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", src, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("download %s: %s: %w", src, resp.Status, ErrNotFound)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("download %s: %s: %w", src, resp.Status, ErrUnauthorized)
	default:
		return fmt.Errorf("download %s: unexpected status %s", src, resp.Status)
	}
	if resp.ContentLength > limit {
		return fmt.Errorf("download %s: %d bytes exceed the limit of %d: %w", src, resp.ContentLength, limit, ErrTooLarge)
	}
	if err := dl.fill(resp.Body, limit, "download "+src); err != nil {
		return err
	}
	return nil
}

// downloadName is the raw binary's file name: the URL path's last element, if usable.
func downloadName(u *url.URL) string {
	base := path.Base(u.Path)
	if checkFileName(base) != nil || base == "/" || strings.HasPrefix(base, ".") {
		return "containerd-shim"
	}
	return base
}

type fileKind int

const (
	rawFile fileKind = iota
	tarFile
	tarGzFile
)

// sniff tells a gzip stream or a tar archive from a raw binary by its first bytes.
func sniff(f *os.File) (fileKind, error) {
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return tarGzFile, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return tarFile, nil
	}
	return rawFile, nil
}

// openTar opens the archive in f from the start.
func openTar(f *os.File, kind fileKind) (*tar.Reader, func(), error) {
	r := bufio.NewReader(io.NewSectionReader(f, 0, 1<<62))
	if kind == tarFile {
		return tar.NewReader(r), func() {}, nil
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("gunzip %s: %w", f.Name(), err)
	}
	return tar.NewReader(zr), func() { zr.Close() }, nil
}

// pickMember lists the archive's regular files and chooses the binary.
func (h HTTP) pickMember(f *os.File, kind fileKind) (string, error) {
	tr, done, err := openTar(f, kind)
	if err != nil {
		return "", err
	}
	defer done()
	var files []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("read archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg {
			files = append(files, cleanEntry(hdr.Name))
		}
	}
	var match []string
	switch want := cleanEntry(h.Member); {
	case h.Member != "":
		for _, name := range files {
			if name == want || (!strings.Contains(want, "/") && path.Base(name) == want) {
				match = append(match, name)
			}
		}
	case len(files) == 1:
		match = files
	default:
		for _, name := range files {
			if strings.HasPrefix(path.Base(name), "containerd-shim-") {
				match = append(match, name)
			}
		}
	}
	switch {
	case len(match) == 1:
		return match[0], nil
	case len(match) == 0 && h.Member != "":
		return "", fmt.Errorf("archive has no regular file %q (it holds %s): %w", h.Member, strings.Join(files, ", "), ErrNotFound)
	case len(match) == 0:
		return "", fmt.Errorf("archive holds %d files and none is containerd-shim-*; set the member name: %w", len(files), ErrNotFound)
	}
	return "", fmt.Errorf("archive member is ambiguous (%s); set the member name to one path", strings.Join(match, ", "))
}

// extractMember copies the regular file member from the archive into bin.
func extractMember(f *os.File, kind fileKind, member string, bin *staged, limit int64) error {
	tr, done, err := openTar(f, kind)
	if err != nil {
		return err
	}
	defer done()
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("archive member %s vanished on the second read", member)
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeReg && cleanEntry(hdr.Name) == member {
			return bin.fill(tr, limit, "archive member "+member)
		}
	}
}

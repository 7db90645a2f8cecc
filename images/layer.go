package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// LayerTar returns the bytes of an uncompressed layer tar holding files. It is deterministic: entries
// are sorted by path, missing parent directories are added (root-owned, 0755), every entry carries
// modTime and numeric owners only, and regular files, directories and nothing else are allowed.
func LayerTar(files []File, modTime time.Time) ([]byte, error) {
	entries := make(map[string]File, len(files))
	for _, f := range files {
		clean := path.Clean(f.Path)
		if !path.IsAbs(f.Path) || clean == "/" {
			return nil, fmt.Errorf("image file %q: the path must be absolute and not /", f.Path)
		}
		if f.Mode&fs.ModeType&^fs.ModeDir != 0 {
			return nil, fmt.Errorf("image file %s: only regular files and directories are supported, not %v", clean, f.Mode.Type())
		}
		if f.Mode.IsDir() && f.Data != nil {
			return nil, fmt.Errorf("image file %s: a directory cannot have data", clean)
		}
		if _, dup := entries[clean]; dup {
			return nil, fmt.Errorf("image file %s: listed twice", clean)
		}
		f.Path = clean
		entries[clean] = f
	}
	for p, f := range entries {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if parent, ok := entries[dir]; ok {
				if !parent.Mode.IsDir() {
					return nil, fmt.Errorf("image file %s: its parent %s is a file", f.Path, dir)
				}
				continue
			}
			entries[dir] = File{Path: dir, Mode: fs.ModeDir | 0o755}
		}
	}
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		f := entries[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    tarMode(f.Mode),
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: modTime,
			Format:  tar.FormatPAX,
		}
		if f.Mode.IsDir() {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write tar header for %s: %w", p, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("write %s into the layer: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// tarMode converts permission bits and the setuid/setgid/sticky flags to tar's mode field.
func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// Layer turns a layer tar into a gzip-compressed OCI layer. Go's gzip writer is deterministic and
// leaves the header's time zero, so the compressed digest is stable too.
func Layer(tarBytes []byte) (v1.Layer, error) {
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarBytes)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}
	return l, nil
}

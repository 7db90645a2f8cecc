package shimsource

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// maxLinks bounds how many symlinks and hard links extract follows.
const maxLinks = 16

// outcome is what one layer says about the target path.
type outcome int

const (
	absent   outcome = iota // not in this layer: look below
	found                   // extracted
	removed                 // whited out, hidden by an opaque directory or a non-directory parent
	symlink                 // the path (or a parent) is a symlink: search again from the top
	hardlink                // the path is a hard link: search again in the same layer
)

// extract finds target ("a/b/file") in the image's layers, top down, and copies it into st.
func extract(im *image, target string, st *staged, limit int64) error {
	layers := im.manifest.Layers
	top := len(layers) - 1
	links := 0
	for i := top; i >= 0; {
		res, next, err := scanLayer(im.img, layers[i], target, st, limit)
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i, layers[i].Digest, err)
		}
		switch res {
		case found:
			return nil
		case removed:
			return fmt.Errorf("/%s is removed or hidden in layer %d (%s): %w", target, i, layers[i].Digest, ErrNotFound)
		case symlink, hardlink:
			if links++; links > maxLinks {
				return fmt.Errorf("/%s: more than %d links: %w", target, maxLinks, ErrNotFound)
			}
			target = next
			if res == symlink {
				i = top
			}
		case absent:
			i--
		}
	}
	return fmt.Errorf("/%s is in none of the %d layers: %w", target, len(layers), ErrNotFound)
}

// scanLayer reads one layer, verifying its digest, and reports what it holds at target. The
// whole compressed blob is always read, so the digest covers every byte the decision used.
func scanLayer(img v1.Image, desc v1.Descriptor, target string, st *staged, limit int64) (outcome, string, error) {
	if !desc.MediaType.IsLayer() {
		return 0, "", fmt.Errorf("unsupported layer media type %q", desc.MediaType)
	}
	if desc.Digest.Algorithm != "sha256" {
		return 0, "", fmt.Errorf("unsupported digest algorithm %q", desc.Digest.Algorithm)
	}
	if desc.Size > limit {
		return 0, "", fmt.Errorf("layer of %d bytes exceeds the limit of %d: %w", desc.Size, limit, ErrTooLarge)
	}
	layer, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		return 0, "", fmt.Errorf("open layer: %w", classify(err))
	}
	rc, err := layer.Compressed()
	if err != nil {
		return 0, "", fmt.Errorf("open layer: %w", classify(err))
	}
	defer rc.Close()
	dr := &digestReader{r: rc, h: sha256.New(), want: desc}

	res, next, err := scanTar(dr, target, st, limit)
	if err != nil {
		return 0, "", dr.fail(err)
	}
	if _, err := io.Copy(io.Discard, dr); err != nil {
		return 0, "", dr.fail(err)
	}
	if err := dr.verify(); err != nil {
		return 0, "", err
	}
	return res, next, nil
}

// scanTar decompresses a layer stream (gzip, zstd or plain tar, told by magic bytes) and
// looks for target, applying whiteouts of this layer to the paths below it.
func scanTar(r io.Reader, target string, st *staged, limit int64) (outcome, string, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(4)
	var tr *tar.Reader
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return 0, "", fmt.Errorf("gunzip: %w", err)
		}
		defer zr.Close()
		tr = tar.NewReader(zr)
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(256<<20))
		if err != nil {
			return 0, "", fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		tr = tar.NewReader(zr)
	default:
		tr = tar.NewReader(br)
	}
	hidden := false
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, "", fmt.Errorf("read tar: %w", err)
		}
		name := cleanEntry(hdr.Name)
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if strings.HasPrefix(base, ".wh.") {
			if base == ".wh..wh..opq" {
				hidden = hidden || dir == "" || strings.HasPrefix(target, dir+"/")
			} else if gone := path.Join(dir, strings.TrimPrefix(base, ".wh.")); gone == target || strings.HasPrefix(target, gone+"/") {
				hidden = true
			}
			continue
		}
		switch {
		case name == target:
			switch hdr.Typeflag {
			case tar.TypeReg: // archive/tar reports old TypeRegA entries as TypeReg
				if hdr.Size > limit {
					return 0, "", fmt.Errorf("/%s has %d bytes, over the limit of %d: %w", target, hdr.Size, limit, ErrTooLarge)
				}
				if err := st.fill(tr, limit, "/"+target); err != nil {
					return 0, "", err
				}
				return found, "", nil
			case tar.TypeSymlink, tar.TypeLink:
				next, res := resolveLink(dir, hdr.Linkname), symlink
				if hdr.Typeflag == tar.TypeLink {
					next, res = cleanEntry(hdr.Linkname), hardlink // hard link names are relative to the root
				}
				if next == "" {
					return 0, "", fmt.Errorf("/%s links to the root directory", target)
				}
				return res, next, nil
			default:
				return 0, "", fmt.Errorf("/%s is not a regular file (tar type %q)", target, hdr.Typeflag)
			}
		case strings.HasPrefix(target, name+"/") && name != "":
			switch hdr.Typeflag {
			case tar.TypeDir:
			case tar.TypeSymlink:
				return symlink, path.Join(resolveLink(dir, hdr.Linkname), strings.TrimPrefix(target, name+"/")), nil
			default:
				hidden = true // a non-directory parent: the path cannot exist below
			}
		}
	}
	if hidden {
		return removed, "", nil
	}
	return absent, "", nil
}

// cleanEntry turns a tar entry name or absolute path into "a/b" form ("" for the root).
func cleanEntry(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// resolveLink resolves a symlink target found in directory dir, confined to the image root.
func resolveLink(dir, link string) string {
	if strings.HasPrefix(link, "/") {
		return cleanEntry(link)
	}
	return cleanEntry(path.Join("/"+dir, link))
}

// digestReader hashes and counts a layer blob as it is read.
type digestReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want v1.Descriptor
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	return n, err
}

// verify compares size and sha256 of what was read with the descriptor.
func (d *digestReader) verify() error {
	got := hex.EncodeToString(d.h.Sum(nil))
	if d.n != d.want.Size || got != d.want.Digest.Hex {
		return fmt.Errorf("blob has %d bytes with sha256:%s, manifest says %d bytes with %s: %w",
			d.n, got, d.want.Size, d.want.Digest, ErrDigestMismatch)
	}
	return nil
}

// fail explains a read or decode error. The rest of the blob is read first: when the blob as a
// whole does not match its descriptor, the cause is tampering or a lying registry
// (ErrDigestMismatch), not the decode error it produced. A blob that ends early without a
// network or context error counts as a size mismatch too.
func (d *digestReader) fail(err error) error {
	_, derr := io.Copy(io.Discard, d)
	switch {
	case d.n == d.want.Size:
		if verr := d.verify(); verr != nil {
			return fmt.Errorf("%w (while reading: %v)", verr, err)
		}
	case d.n < d.want.Size && derr != nil && !interrupted(derr):
		return fmt.Errorf("blob ended after %d bytes, manifest says %d: %w (%v)", d.n, d.want.Size, ErrDigestMismatch, derr)
	}
	return fmt.Errorf("read layer: %w", err)
}

// interrupted tells a broken transfer (connection, timeout, cancellation) from a complete one.
func interrupted(err error) bool {
	var ne net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.Canceled) ||
		errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne)
}

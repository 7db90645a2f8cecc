package images

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Annotations on the layout's index.json entry naming the image: the OCI tag, and the full reference
// containerd's importer uses as the image name.
const (
	AnnotationRefName        = "org.opencontainers.image.ref.name"
	AnnotationContainerdName = "io.containerd.image.name"
)

// Output lists the files Write produced for one image.
type Output struct {
	// Layout is an OCI image layout directory whose index.json names the multi-arch index.
	Layout string
	// Archive is the same layout as one tar file: `ctr -n k8s.io images import` takes it on any platform.
	Archive string
	// Tarballs are docker-save tarballs, one per platform ("linux/arm64" -> path), for `docker load`,
	// `kind load image-archive` and `ctr images import`.
	Tarballs map[string]string
}

// Write stores b under dir, named ref:
//
//	dir/<name>/                  OCI image layout holding the index
//	dir/<name>.oci.tar           that layout as a tar
//	dir/<name>-<os>-<arch>.tar   docker-save tarball of one platform, tagged ref
//
// Existing outputs of the same image are replaced.
func Write(dir string, b *Built, ref name.Tag) (Output, error) {
	base := filepath.Join(dir, b.Definition.Name)
	out := Output{Layout: base, Archive: base + ".oci.tar", Tarballs: map[string]string{}}
	if err := os.RemoveAll(base); err != nil {
		return out, fmt.Errorf("write image %s: %w", b.Definition.Name, err)
	}
	lp, err := layout.Write(base, empty.Index)
	if err != nil {
		return out, fmt.Errorf("write OCI layout %s: %w", base, err)
	}
	if err := lp.AppendIndex(b.Index, layout.WithAnnotations(map[string]string{
		AnnotationRefName:        ref.TagStr(),
		AnnotationContainerdName: ref.Name(),
	})); err != nil {
		return out, fmt.Errorf("write OCI layout %s: %w", base, err)
	}
	if err := writeTarOfDir(base, out.Archive); err != nil {
		return out, err
	}
	for _, pi := range b.Images {
		path := fmt.Sprintf("%s-%s-%s.tar", base, pi.Platform.OS, pi.Platform.Architecture)
		if err := writeAtomic(path, func(w io.Writer) error { return tarball.Write(ref, pi.Image, w) }); err != nil {
			return out, fmt.Errorf("write docker tarball %s: %w", path, err)
		}
		out.Tarballs[pi.Platform.String()] = path
	}
	return out, nil
}

// writeTarOfDir writes the tree under dir into the tar file dst with sorted entries, zero times and
// root ownership, so equal trees give equal bytes.
func writeTarOfDir(dir, dst string) error {
	var paths []string
	if err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("archive %s: %w", dir, err)
	}
	sort.Strings(paths)
	err := writeAtomic(dst, func(w io.Writer) error {
		tw := tar.NewWriter(w)
		for _, p := range paths {
			st, err := os.Lstat(p)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
			switch {
			case st.IsDir():
				hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			case st.Mode().IsRegular():
				hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, st.Size()
			default:
				return fmt.Errorf("%s: not a regular file or directory", p)
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if hdr.Typeflag == tar.TypeReg {
				if err := copyFile(tw, p); err != nil {
					return err
				}
			}
		}
		return tw.Close()
	})
	if err != nil {
		return fmt.Errorf("archive %s into %s: %w", dir, dst, err)
	}
	return nil
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// writeAtomic writes path through a temporary file in the same directory, synced and renamed into
// place, so a reader never sees a half-written file.
func writeAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package images

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"
)

type tarEntry struct {
	name     string
	typeflag byte
	mode     int64
	uid      int
	data     string
}

func readTar(t *testing.T, b []byte) ([]tarEntry, []*tar.Header) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var entries []tarEntry
	var headers []*tar.Header
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries, headers
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		entries = append(entries, tarEntry{hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, string(data)})
		headers = append(headers, hdr)
	}
}

func TestLayerTar(t *testing.T) {
	t.Parallel()
	epoch := time.Unix(1700000000, 0)
	tests := map[string]struct {
		files     []File
		want      []tarEntry
		wantError string
	}{
		"sorted with implicit parents": {
			files: []File{
				{Path: "/usr/bin/b", Mode: 0o755, Data: []byte("B")},
				{Path: "/a", Mode: 0o644, Data: []byte("A")},
				{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
				{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: 65532, GID: 65532},
			},
			want: []tarEntry{
				{"a", tar.TypeReg, 0o644, 0, "A"},
				{"home/", tar.TypeDir, 0o755, 0, ""},
				{"home/nonroot/", tar.TypeDir, 0o700, 65532, ""},
				{"tmp/", tar.TypeDir, 0o1777, 0, ""},
				{"usr/", tar.TypeDir, 0o755, 0, ""},
				{"usr/bin/", tar.TypeDir, 0o755, 0, ""},
				{"usr/bin/b", tar.TypeReg, 0o755, 0, "B"},
			},
		},
		"relative path":      {files: []File{{Path: "etc/passwd"}}, wantError: "must be absolute"},
		"root":               {files: []File{{Path: "/", Mode: fs.ModeDir}}, wantError: "must be absolute and not /"},
		"listed twice":       {files: []File{{Path: "/a"}, {Path: "/a/"}}, wantError: "listed twice"},
		"file as parent":     {files: []File{{Path: "/a"}, {Path: "/a/b"}}, wantError: "its parent /a is a file"},
		"symlink":            {files: []File{{Path: "/l", Mode: fs.ModeSymlink}}, wantError: "only regular files and directories"},
		"directory has data": {files: []File{{Path: "/d", Mode: fs.ModeDir, Data: []byte("x")}}, wantError: "cannot have data"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := LayerTar(tc.files, epoch)
			if tc.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("LayerTar() error = %v, want one containing %q", err, tc.wantError)
				}
				return
			}
			if err != nil {
				t.Fatalf("LayerTar(): %v", err)
			}
			entries, headers := readTar(t, got)
			if len(entries) != len(tc.want) {
				t.Fatalf("entries = %+v\nwant %+v", entries, tc.want)
			}
			for i := range entries {
				if entries[i] != tc.want[i] {
					t.Errorf("entry %d = %+v, want %+v", i, entries[i], tc.want[i])
				}
				if h := headers[i]; !h.ModTime.Equal(epoch) || h.Uname != "" || h.Gname != "" {
					t.Errorf("entry %s: mtime %v uname %q gname %q, want %v and no names", h.Name, h.ModTime, h.Uname, h.Gname, epoch)
				}
			}
			again, err := LayerTar(tc.files, epoch)
			if err != nil || !bytes.Equal(got, again) {
				t.Errorf("a second LayerTar() of the same files gave different bytes (err %v)", err)
			}
		})
	}
}

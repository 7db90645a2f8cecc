package wazeroshim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/containerd/fifo"
)

// fifoOpenTimeout bounds the wait for containerd (or ctr) to hold the read end of an output FIFO.
const fifoOpenTimeout = 30 * time.Second

// stdio holds the container's standard streams: the FIFOs (or files) containerd named at Create.
// Closing stdout and stderr tells containerd's log copier that the container's output has ended.
type stdio struct {
	stdin          io.ReadCloser
	stdout, stderr io.WriteCloser
}

// openStdio opens the paths of a CreateTaskRequest. Empty paths mean no stream (output discarded).
// Output paths are FIFOs or file:// URIs; stdin is opened in the background, since its writer
// (ctr -i) may connect later. life bounds the background open of stdin.
func openStdio(life context.Context, stdinPath, stdoutPath, stderrPath string) (_ *stdio, err error) {
	s := &stdio{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.stdout, err = openOutput(stdoutPath); err != nil {
		return nil, err
	}
	if s.stderr, err = openOutput(stderrPath); err != nil {
		return nil, err
	}
	if stdinPath != "" {
		if s.stdin, err = fifo.OpenFifo(life, stdinPath, syscall.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			return nil, fmt.Errorf("open stdin %s: %w", stdinPath, err)
		}
	}
	return s, nil
}

func openOutput(p string) (io.WriteCloser, error) {
	if p == "" {
		return nopCloser{io.Discard}, nil
	}
	u, err := url.Parse(p)
	if err == nil && u.Scheme != "" {
		if u.Scheme != "file" {
			return nil, fmt.Errorf("output %s: only FIFO paths and file:// URIs are supported, not %s://", p, u.Scheme)
		}
		f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open output file %s: %w", u.Path, err)
		}
		return f, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), fifoOpenTimeout)
	defer cancel()
	f, err := fifo.OpenFifo(ctx, p, syscall.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open output FIFO %s (is its reader gone?): %w", p, err)
	}
	return f, nil
}

// CloseOutput closes stdout and stderr (the guest has ended).
func (s *stdio) CloseOutput() error {
	var errs []error
	for _, c := range []io.Closer{s.stdout, s.stderr} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	s.stdout, s.stderr = nil, nil
	return errors.Join(errs...)
}

// CloseStdin closes stdin, so a guest reading it sees end of file.
func (s *stdio) CloseStdin() error {
	if s.stdin == nil {
		return nil
	}
	err := s.stdin.Close()
	s.stdin = nil
	return err
}

// Close closes every stream.
func (s *stdio) Close() error { return errors.Join(s.CloseOutput(), s.CloseStdin()) }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

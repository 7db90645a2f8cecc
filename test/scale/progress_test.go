package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// progress records when how many nodes were done during one measurement, so that a floor and a
// rollout can be compared over time and not only by their end (with -profile-dir it is saved beside
// the profiles as <nodes>-<tag>-<run>-progress.txt: seconds and nodes done, one sample per line).
type progress struct {
	start   time.Time
	samples []sample
}

type sample struct {
	at   time.Duration
	done int
}

func newProgress() *progress { return &progress{start: time.Now()} }

// record notes that done nodes are done now; samples that do not move the count are dropped.
func (p *progress) record(done int) {
	if n := len(p.samples); n > 0 && p.samples[n-1].done == done {
		return
	}
	p.samples = append(p.samples, sample{time.Since(p.start), done})
}

// when returns when at least done nodes were done (0 if never).
func (p *progress) when(done int) time.Duration {
	for _, s := range p.samples {
		if s.done >= done {
			return s.at
		}
	}
	return 0
}

// quartiles describes when a quarter, half, three quarters and all of n nodes were done.
func (p *progress) quartiles(n int) string {
	var parts []string
	for _, q := range []int{1, 2, 3, 4} {
		parts = append(parts, fmt.Sprintf("%.0f", p.when((n*q+3)/4).Seconds()))
	}
	return strings.Join(parts, "/")
}

// save writes the samples to -profile-dir (if set) as <name>-progress.txt.
func (p *progress) save(name string) error {
	if *profileDir == "" {
		return nil
	}
	var b strings.Builder
	for _, s := range p.samples {
		fmt.Fprintf(&b, "%.2f %d\n", s.at.Seconds(), s.done)
	}
	return os.WriteFile(filepath.Join(*profileDir, name+"-progress.txt"), []byte(b.String()), 0o644)
}

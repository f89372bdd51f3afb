// Package diskspace keeps a free-space floor under the device's Badger directories. Badger
// crashes with SIGBUS when a write to a memory-mapped file finds the disk full, so writers ask
// first: below the floor, syncs and imports stop (the device goes on deciding from what it
// holds) and, at a lower floor, decisions become MANUAL because they cannot be audited.
//
// diskspace imports nothing of the project.
package diskspace

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrLow reports free space below a floor; match with errors.Is.
var ErrLow = errors.New("free disk space below the floor")

// Probe reports the bytes available to the device's writer on the filesystem holding dir.
type Probe func(dir string) (uint64, error)

// Statfs is the real probe: the filesystem's blocks available to unprivileged users.
func Statfs(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// Floor is a minimum of free space under Dir. The zero Min disables it.
type Floor struct {
	Dir   string
	Min   uint64
	Probe Probe // nil means Statfs
}

// Check returns nil while the free space is at least Min plus need (bytes about to be
// written), or an error wrapping ErrLow that says how much is left.
func (f Floor) Check(need uint64) error {
	if f.Min == 0 {
		return nil
	}
	probe := f.Probe
	if probe == nil {
		probe = Statfs
	}
	free, err := probe(f.Dir)
	if err != nil {
		return err
	}
	if free < f.Min+need {
		return fmt.Errorf("%w: %s has %d MiB free, the floor is %d MiB (plus %d MiB to write)", ErrLow, f.Dir, free>>20, f.Min>>20, need>>20)
	}
	return nil
}

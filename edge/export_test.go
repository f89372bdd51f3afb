package edge

import "time"

// ClockCheckForTest exposes clockCheck to the external tests.
func ClockCheckForTest(trustedAt time.Time, offset, elapsed, wall time.Duration) string {
	return clockCheck(trustedAt, offset, elapsed, wall)
}

//go:build race

package tablelog

// The race detector makes sync.Pool drop a share of what is put back, so
// allocation counts do not hold under -race.
func init() { raceEnabled = true }

//go:build !race

package mgmt

// raceEnabled: the race detector is on (sync.Pool then drops entries at random).
const raceEnabled = false

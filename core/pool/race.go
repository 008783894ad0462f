//go:build race

package pool

// raceEnabled tells New to start workers with the race detector's exit
// sleep turned off: a recycled worker would otherwise linger a second.
const raceEnabled = true

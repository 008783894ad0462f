//go:build race

package queue

import "sync/atomic"

// raceClock stands in for the queue lock, whose atomics the race detector
// cannot see because they lie outside Go memory: unlock adds to it and lock
// loads it, which the detector takes as an edge, so the handle's fields
// guarded by the lock are seen as guarded. One clock serves every queue:
// that only adds edges, and so can hide a race but never invent one.
var raceClock atomic.Uint64

func raceAcquire() { raceClock.Load() }
func raceRelease() { raceClock.Add(1) }

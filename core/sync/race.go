//go:build race

package sync

import (
	"sync/atomic"
	"unsafe"
)

// raceClock stands in for the shared words, whose atomics the race detector
// ignores because they lie outside Go memory: a release adds to the slot of
// the word and an acquire loads it, which the detector sees as an edge.
// Sharing slots only adds edges, and so can hide a race but never invent one.
var raceClock [64]uint64

func raceSlot(p unsafe.Pointer) *uint64 {
	return &raceClock[uintptr(p)/8%uintptr(len(raceClock))]
}

func raceAcquire(p unsafe.Pointer) { atomic.LoadUint64(raceSlot(p)) }
func raceRelease(p unsafe.Pointer) { atomic.AddUint64(raceSlot(p), 1) }

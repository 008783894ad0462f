package futex

import (
	"sync/atomic"
	"time"
)

// Spin busy-waits up to d for cond to become true and reports whether it
// did. It never yields: runtime.Gosched on a goroutine locked to a foreign
// thread (a cgo call from C or Python, which is how the engine is mostly
// entered) hands the thread off and costs microseconds per call, which
// makes a spin both slow to notice the condition and expensive in CPU.
// cond must be cheap (a few atomic loads); d should be tens of
// microseconds at most, after which the caller sleeps on a futex.
func Spin(cond func() bool, d time.Duration) bool {
	if cond() {
		return true
	}
	start := time.Now()
	for i := 1; ; i++ {
		for range 16 {
			if cond() {
				return true
			}
			spinPause()
		}
		if i%8 == 0 && time.Since(start) >= d {
			return false
		}
	}
}

// spinSink keeps spinPause from being optimised away.
var spinSink atomic.Uint32

// spinPause burns a few cycles between polls of a shared word, so a spin
// does not hammer the cache line it watches.
func spinPause() {
	for range 4 {
		spinSink.Load()
	}
}

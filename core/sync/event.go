package sync

import (
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/internal/futex"
)

// Event layout, 8 bytes:
//
//	off 0  uint32  bit 0: the flag; bits 1-31: number of Sets that raised
//	               it, modulo 2^31 (the futex word)
//	off 4  uint32  sleepers: Wait calls that may be asleep on the word
//
// Counting Sets lets a waiter woken by Set return true even if the flag was
// cleared again before it ran, as threading.Event does.
const (
	EventSize = 8

	eventWord     = 0
	eventSleepers = 4
)

// Event is a flag in shared memory that threads can wait for, like
// multiprocessing.Event.
type Event struct {
	word, sleepers *uint32
}

// NewEvent initialises mem as a clear Event.
func NewEvent(mem []byte) (*Event, error) {
	if err := view("Event", mem, EventSize); err != nil {
		return nil, err
	}
	clear(mem[:EventSize])
	return OpenEvent(mem)
}

// OpenEvent attaches to the Event initialised in mem.
func OpenEvent(mem []byte) (*Event, error) {
	if err := view("Event", mem, EventSize); err != nil {
		return nil, err
	}
	return &Event{word(mem, eventWord), word(mem, eventSleepers)}, nil
}

// Set raises the flag and wakes every waiter.
func (e *Event) Set() {
	raceRelease(unsafe.Pointer(e.word))
	for {
		w := atomic.LoadUint32(e.word)
		if w&1 != 0 {
			return
		}
		if atomic.CompareAndSwapUint32(e.word, w, (w+2)|1) {
			break
		}
	}
	if atomic.LoadUint32(e.sleepers) != 0 {
		futex.Wake(e.word, 1<<31-1)
	}
}

// Clear lowers the flag.
func (e *Event) Clear() {
	for {
		w := atomic.LoadUint32(e.word)
		if w&1 == 0 || atomic.CompareAndSwapUint32(e.word, w, w&^1) {
			return
		}
	}
}

// IsSet reports whether the flag is raised.
func (e *Event) IsSet() bool {
	if atomic.LoadUint32(e.word)&1 == 0 {
		return false
	}
	raceAcquire(unsafe.Pointer(e.word))
	return true
}

// Wait waits at most timeout (< 0: no limit, 0: just look) until the flag
// is raised, and reports whether it was, or was set meanwhile.
func (e *Event) Wait(timeout time.Duration) (bool, error) {
	w0 := atomic.LoadUint32(e.word)
	if w0&1 != 0 {
		raceAcquire(unsafe.Pointer(e.word))
		return true, nil
	}
	if timeout == 0 {
		return false, nil
	}
	d := futex.NewDeadline(timeout)
	atomic.AddUint32(e.sleepers, 1)
	defer atomic.AddUint32(e.sleepers, ^uint32(0))
	for {
		w := atomic.LoadUint32(e.word)
		if w&1 != 0 || w>>1 != w0>>1 {
			raceAcquire(unsafe.Pointer(e.word))
			return true, nil
		}
		slice, expired := d.Next(-1)
		if expired {
			return false, nil
		}
		_ = futex.Wait(e.word, w, slice)
	}
}

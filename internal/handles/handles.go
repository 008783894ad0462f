// Package handles holds the engine objects that foreign code (C and Python)
// names by integer handles. capi and pybind share these tables, so an object
// created through gopy can be used by the C fast path, and the reverse: both
// are compiled into the one shared object of the Python extension.
package handles

import (
	"fmt"
	"sync"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/pool"
	"github.com/mpgo/mpgo/core/process"
	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
)

// Table maps handles to objects of one kind. Handles start above 1000 and
// are never reused, so 0, small ints and stale handles never name a live
// object.
type Table[T any] struct {
	mu   sync.RWMutex
	next int64
	m    map[int64]T
}

// ErrBadHandle reports a handle that names no live object.
var ErrBadHandle = fmt.Errorf("unknown or closed handle: %w", errs.ErrClosed)

// Put stores v and returns its new handle.
func (t *Table[T]) Put(v T) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[int64]T)
		t.next = 1000
	}
	t.next++
	t.m[t.next] = v
	return t.next
}

// Get returns the object behind h, or ErrBadHandle.
func (t *Table[T]) Get(h int64) (T, error) {
	t.mu.RLock()
	v, ok := t.m[h]
	t.mu.RUnlock()
	if !ok {
		return v, ErrBadHandle
	}
	return v, nil
}

// Take removes h and returns its object, if it was live.
func (t *Table[T]) Take(h int64) (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[h]
	delete(t.m, h)
	return v, ok
}

// Len counts the live handles.
func (t *Table[T]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

// The tables.
var (
	Procs  Table[*process.Process]
	Arenas Table[*shm.Arena]
	Queues Table[*queue.Queue]
	// Pools are External pools driven from Python; PoolWorkers are the
	// worker ends attached by Python pool workers.
	Pools       Table[*pool.Pool]
	PoolWorkers Table[*pool.Worker]
)

// Live counts the live handles of every kind; tests check it drops to 0.
func Live() int {
	return Procs.Len() + Arenas.Len() + Queues.Len() + Pools.Len() + PoolWorkers.Len()
}

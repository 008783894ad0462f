// Package value gives Go programs typed views of the shared Values and
// Arrays that mpgo's Python side (sharedctypes) and C programs create: a
// Value or Array is a block of an arena (core/shm) holding C-layout data,
// guarded by a Lock or RLock (core/sync) in another block of shared memory.
//
// A view is a Go slice over the mapping itself, so reads and writes are
// seen by every process at once. As in Python, a read-modify-write is only
// exact under the lock: Update does it under the lock.
package value

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/sync"
)

// Scalar is the set of element types a Value or Array may hold; they match
// the ctypes (and array module typecodes) Python uses:
// int8 'b', uint8 'B', int16 'h', uint16 'H', int32 'i', uint32 'I',
// int64 'l'/'q', uint64 'L'/'Q', float32 'f', float64 'd'.
type Scalar interface {
	~int8 | ~uint8 | ~int16 | ~uint16 | ~int32 | ~uint32 | ~int64 | ~uint64 |
		~float32 | ~float64
}

// Locker is the lock guarding a Value or Array: a *sync.Lock or *sync.RLock.
type Locker interface {
	Acquire(o sync.Owner, timeout time.Duration) (bool, error)
	Release(o sync.Owner) error
}

// Array is a shared array of n elements of T at the start of mem.
type Array[T Scalar] struct {
	elems []T
	lock  Locker
}

// View returns the Array of n elements of T at the start of mem, guarded by
// lock (nil: unguarded, like RawArray). mem must be aligned for T.
func View[T Scalar](mem []byte, n int, lock Locker) (*Array[T], error) {
	var zero T
	size := int(unsafe.Sizeof(zero))
	if n < 0 || len(mem) < n*size {
		return nil, fmt.Errorf("value: %d elements of %d bytes need %d bytes, have %d: %w",
			n, size, n*size, len(mem), errs.ErrValue)
	}
	if n > 0 && uintptr(unsafe.Pointer(&mem[0]))%uintptr(size) != 0 {
		return nil, fmt.Errorf("value: memory not aligned to %d: %w", size, errs.ErrValue)
	}
	var elems []T
	if n > 0 {
		elems = unsafe.Slice((*T)(unsafe.Pointer(&mem[0])), n)
	}
	return &Array[T]{elems: elems, lock: lock}, nil
}

// Len returns the number of elements.
func (a *Array[T]) Len() int { return len(a.elems) }

// Raw returns the elements themselves, unguarded: for bulk work done under
// Lock/Unlock, or for data no other process writes concurrently.
func (a *Array[T]) Raw() []T { return a.elems }

// Lock acquires the array's lock for o (no-op without a lock).
func (a *Array[T]) Lock(o sync.Owner) error {
	if a.lock == nil {
		return nil
	}
	_, err := a.lock.Acquire(o, -1)
	return err
}

// Unlock releases the array's lock for o.
func (a *Array[T]) Unlock(o sync.Owner) error {
	if a.lock == nil {
		return nil
	}
	return a.lock.Release(o)
}

// Get returns element i, read under the lock.
func (a *Array[T]) Get(o sync.Owner, i int) (T, error) {
	if err := a.Lock(o); err != nil {
		var zero T
		return zero, err
	}
	v := a.elems[i]
	return v, a.Unlock(o)
}

// Set stores v into element i under the lock.
func (a *Array[T]) Set(o sync.Owner, i int, v T) error {
	if err := a.Lock(o); err != nil {
		return err
	}
	a.elems[i] = v
	return a.Unlock(o)
}

// Update replaces element i by f(element i) under the lock, so concurrent
// updates from any process are never lost.
func (a *Array[T]) Update(o sync.Owner, i int, f func(T) T) error {
	if err := a.Lock(o); err != nil {
		return err
	}
	a.elems[i] = f(a.elems[i])
	return a.Unlock(o)
}

// Value is a shared scalar: an Array of one element.
type Value[T Scalar] struct{ a *Array[T] }

// ViewValue returns the Value of type T at the start of mem, guarded by
// lock (nil: unguarded, like RawValue).
func ViewValue[T Scalar](mem []byte, lock Locker) (*Value[T], error) {
	a, err := View[T](mem, 1, lock)
	if err != nil {
		return nil, err
	}
	return &Value[T]{a}, nil
}

// Get reads the value under the lock.
func (v *Value[T]) Get(o sync.Owner) (T, error) { return v.a.Get(o, 0) }

// Set writes the value under the lock.
func (v *Value[T]) Set(o sync.Owner, x T) error { return v.a.Set(o, 0, x) }

// Update replaces the value by f(value) under the lock.
func (v *Value[T]) Update(o sync.Owner, f func(T) T) error { return v.a.Update(o, 0, f) }

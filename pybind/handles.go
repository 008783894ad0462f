package pybind

import (
	"fmt"
	"sync"

	"github.com/mpgo/mpgo/core/errs"
)

// table maps the integer handles Python holds to engine objects. Handles
// start at 1000 so that 0 and small ints never name a live object.
type table[T any] struct {
	mu   sync.Mutex
	next int64
	m    map[int64]T
}

func (t *table[T]) put(v T) int64 {
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

func (t *table[T]) get(h int64) (T, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[h]
	if !ok {
		var zero T
		return zero, fmt.Errorf("handle %d: %w", h, errs.ErrClosed)
	}
	return v, nil
}

func (t *table[T]) take(h int64) (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[h]
	delete(t.m, h)
	return v, ok
}

func (t *table[T]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// LiveHandles reports how many engine objects Python still holds; tests use
// it to prove nothing leaks.
func LiveHandles() int { return procs.len() + arenas.len() }

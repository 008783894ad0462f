package pybind

import (
	"github.com/mpgo/mpgo/core/shm"
	"github.com/mpgo/mpgo/internal/handles"
)

// ArenaNew creates a shared-memory arena of size bytes and returns a handle.
func ArenaNew(size int) (h int64, err error) {
	defer guard(&err)
	a, err := shm.NewArena(size)
	if err != nil {
		return 0, wrap(err)
	}
	return handles.Arenas.Put(a), nil
}

// ArenaAttach attaches the arena named by ref ("pid:fd:size", as ArenaRef
// returns it in the process that wrote it) and returns a handle.
func ArenaAttach(ref string) (h int64, err error) {
	defer guard(&err)
	r, err := shm.ParseRef(ref)
	if err != nil {
		return 0, wrap(err)
	}
	a, err := shm.AttachArena(r)
	if err != nil {
		return 0, wrap(err)
	}
	return handles.Arenas.Put(a), nil
}

// ArenaRef returns the reference another process uses to attach the arena:
// this process's pid and its own descriptor.
func ArenaRef(h int64) (ref string, err error) {
	defer guard(&err)
	a, err := handles.Arenas.Get(h)
	if err != nil {
		return "", wrap(err)
	}
	return a.Segment().Ref().String(), nil
}

// ArenaFD returns the arena's memfd, which Python maps itself.
func ArenaFD(h int64) (fd int, err error) {
	defer guard(&err)
	a, err := handles.Arenas.Get(h)
	if err != nil {
		return 0, wrap(err)
	}
	return a.Segment().FD(), nil
}

// ArenaSize returns the arena's size in bytes.
func ArenaSize(h int64) (n int, err error) {
	defer guard(&err)
	a, err := handles.Arenas.Get(h)
	if err != nil {
		return 0, wrap(err)
	}
	return len(a.Bytes()), nil
}

// ArenaAlloc allocates n bytes aligned to align and returns their offset.
func ArenaAlloc(h int64, n, align int) (off int, err error) {
	defer guard(&err)
	a, err := handles.Arenas.Get(h)
	if err != nil {
		return 0, wrap(err)
	}
	off, err = a.Alloc(n, align)
	return off, wrap(err)
}

// ArenaFree frees the block at off.
func ArenaFree(h int64, off int) (err error) {
	defer guard(&err)
	a, err := handles.Arenas.Get(h)
	if err != nil {
		return wrap(err)
	}
	return wrap(a.Free(off))
}

// ArenaClose unmaps the arena in this process and forgets the handle.
func ArenaClose(h int64) (err error) {
	defer guard(&err)
	if a, ok := handles.Arenas.Take(h); ok {
		return wrap(a.Segment().Close())
	}
	return nil
}

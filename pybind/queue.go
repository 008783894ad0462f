package pybind

import (
	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
	"github.com/mpgo/mpgo/internal/handles"
)

// QueueNew creates a shared-memory queue of at most maxsize messages (0:
// unbounded) and returns its handle. Puts and gets go through the C fast
// path (mpgo._native._fast.Queue), which shares the handle.
func QueueNew(maxsize int) (h int64, err error) {
	defer guard(&err)
	q, err := queue.New(maxsize)
	if err != nil {
		return 0, wrap(err)
	}
	return handles.Queues.Put(q), nil
}

// QueueAttach attaches the queue named by ref ("pid:fd:size").
func QueueAttach(ref string) (h int64, err error) {
	defer guard(&err)
	r, err := shm.ParseRef(ref)
	if err != nil {
		return 0, wrap(err)
	}
	q, err := queue.Attach(r)
	if err != nil {
		return 0, wrap(err)
	}
	return handles.Queues.Put(q), nil
}

// QueueRef returns this process's reference to the queue, for pickling.
func QueueRef(h int64) (ref string, err error) {
	defer guard(&err)
	q, err := handles.Queues.Get(h)
	if err != nil {
		return "", wrap(err)
	}
	return q.Ref().String(), nil
}

// QueueMaxsize returns the queue's bound (0: unbounded).
func QueueMaxsize(h int64) (n int, err error) {
	defer guard(&err)
	q, err := handles.Queues.Get(h)
	if err != nil {
		return 0, wrap(err)
	}
	return q.Cap(), nil
}

// QueueShutdown makes later puts fail and, once drained, gets fail, in
// every process.
func QueueShutdown(h int64) (err error) {
	defer guard(&err)
	q, err := handles.Queues.Get(h)
	if err != nil {
		return wrap(err)
	}
	return wrap(q.Shutdown())
}

// QueueClose closes the queue in this process only and forgets the handle.
func QueueClose(h int64) (err error) {
	defer guard(&err)
	if q, ok := handles.Queues.Take(h); ok {
		return wrap(q.Close())
	}
	return nil
}

// QueueFD returns this process's descriptor of the queue's memfd; Python
// compares its inode with the one a pickled reference carries.
func QueueFD(h int64) (fd int, err error) {
	defer guard(&err)
	q, err := handles.Queues.Get(h)
	if err != nil {
		return 0, wrap(err)
	}
	return q.FD(), nil
}

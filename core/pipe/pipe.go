// Package pipe gives Go programs the two-way message channel under mpgo's
// Pipe(): one core/queue ring per direction. An End receives on one ring
// and sends on the other; the End at the other side has them swapped.
//
// A Go End can talk to a Python Connection of mpgo's Pipe(): attach the
// rings its references name (RingConnection.engine_refs() on the Python
// side), send raw bytes and read with recv_bytes/send_bytes there. To wake
// a Python receiver waiting in poll(), connection.wait() or a select on its
// fileno(), give the End the receiver's doorbell (SetBell; control.go has
// the control block it lives in).
package pipe

import (
	"errors"
	"fmt"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
)

// End is one end of a pipe. Its methods are safe for concurrent use.
type End struct {
	in, out *queue.Queue
	bell    *Bell
}

// New creates a pipe and returns its two ends.
func New() (a, b *End, err error) {
	ab, err := queue.New(0)
	if err != nil {
		return nil, nil, err
	}
	ba, err := queue.New(0)
	if err != nil {
		ab.Close()
		return nil, nil, err
	}
	return &End{in: ba, out: ab}, &End{in: ab, out: ba}, nil
}

// Attach returns the End that receives on the ring named by in and sends on
// the ring named by out; either may be the zero Ref for a one-way end.
func Attach(in, out shm.Ref) (*End, error) {
	e := &End{}
	var err error
	if in != (shm.Ref{}) {
		if e.in, err = queue.Attach(in); err != nil {
			return nil, err
		}
	}
	if out != (shm.Ref{}) {
		if e.out, err = queue.Attach(out); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// Refs returns the references another process uses to attach the ring
// this End receives on and the one it sends on (the peer swaps them).
func (e *End) Refs() (in, out shm.Ref) {
	if e.in != nil {
		in = e.in.Ref()
	}
	if e.out != nil {
		out = e.out.Ref()
	}
	return in, out
}

var errWrongEnd = fmt.Errorf("pipe: end not open in that direction: %w", errs.ErrValue)

// SetBell makes every Send ring b, the doorbell of the receiving side, after
// its put. Call it before the End is used.
func (e *End) SetBell(b *Bell) { e.bell = b }

// Send sends msg; the pipe is unbounded, so it never waits for room.
func (e *End) Send(msg []byte) error {
	if e.out == nil {
		return errWrongEnd
	}
	if err := e.out.Put(msg, -1); err != nil || e.bell == nil {
		return err
	}
	return e.bell.ring(e.out)
}

// Recv waits at most timeout (< 0: no limit) for the next message and
// returns it in buf if it fits, else in a new slice of its size.
func (e *End) Recv(buf []byte, timeout time.Duration) ([]byte, error) {
	if e.in == nil {
		return nil, errWrongEnd
	}
	for {
		n, err := e.in.Get(buf[:cap(buf)], timeout)
		if errors.Is(err, errs.ErrTooShort) {
			buf = make([]byte, n)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// Poll reports whether a message is waiting.
func (e *End) Poll() bool { return e.in != nil && e.in.Len() > 0 }

// Close closes the End in this process; the peer and other processes'
// copies are unaffected.
func (e *End) Close() error {
	var err error
	for _, q := range []*queue.Queue{e.in, e.out} {
		if q != nil {
			if cerr := q.Close(); err == nil {
				err = cerr
			}
		}
	}
	return err
}

package queue_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/queue"
)

// FuzzRing drives a queue with a 64-byte ring through puts and gets of
// fuzz-chosen sizes, which wrap the ring and grow it, and compares every
// result with a slice of messages. The first byte picks the bound.
func FuzzRing(f *testing.F) {
	f.Add([]byte{0, 0, 10, 0, 1, 20})
	f.Add([]byte{0, 0, 60, 0, 0, 60, 0, 1, 255, 1, 0, 0, 200, 1, 1, 0, 3, 3, 255})
	f.Add([]byte{2, 0, 5, 0, 0, 5, 0, 0, 5, 0, 1, 4, 2, 3, 7, 7, 7, 4, 5, 5})
	f.Add([]byte{0, 2, 4, 255, 15, 3, 1, 2, 3, 8, 8, 3, 9, 200, 4, 1, 0, 5, 5, 5, 5})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) == 0 {
			return
		}
		maxsize := int(ops[0] % 4)
		// A few hundred operations wrap and grow the ring many times over;
		// longer inputs only slow down the minimiser.
		ops = ops[1:min(len(ops), 1024)]
		q, err := queue.NewCap(maxsize, 64)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		var model [][]byte
		unfinished, seq := 0, 0
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return int(b)
		}
		size := func() int { return next() | (next()&0x0f)<<8 } // 0..4095
		newMsg := func() []byte {
			seq++
			return pattern(seq, size())
		}
		room := func() int {
			if maxsize == 0 {
				return 1 << 30
			}
			return maxsize - len(model)
		}
		for len(ops) > 0 {
			switch next() % 6 {
			case 0: // Put
				m := newMsg()
				err := q.Put(m, 0)
				if room() == 0 {
					if !errors.Is(err, errs.ErrFull) {
						t.Fatalf("Put on a full queue: %v", err)
					}
					break
				}
				if err != nil {
					t.Fatalf("Put(%d bytes): %v", len(m), err)
				}
				model = append(model, m)
				unfinished++
			case 1: // Get into a buffer that may be too short
				buf := make([]byte, size())
				n, err := q.Get(buf, 0)
				switch {
				case len(model) == 0:
					if !errors.Is(err, errs.ErrEmpty) {
						t.Fatalf("Get on empty: %d, %v", n, err)
					}
				case len(model[0]) > len(buf):
					if !errors.Is(err, errs.ErrTooShort) || n != len(model[0]) {
						t.Fatalf("Get of %d bytes into %d: %d, %v", len(model[0]), len(buf), n, err)
					}
				default:
					if err != nil || !bytes.Equal(buf[:n], model[0]) {
						t.Fatalf("Get: %d bytes, %v; want %d bytes", n, err, len(model[0]))
					}
					model = model[1:]
				}
			case 2: // PutMany
				msgs := make([][]byte, 1+next()%4)
				for i := range msgs {
					msgs[i] = newMsg()
				}
				want := min(len(msgs), room())
				n, err := q.PutMany(msgs, 0)
				if n != want || (want < len(msgs)) != errors.Is(err, errs.ErrFull) || (want == len(msgs) && err != nil) {
					t.Fatalf("PutMany of %d with room %d: %d, %v", len(msgs), room(), n, err)
				}
				model = append(model, msgs[:n]...)
				unfinished += n
			case 3: // GetMany
				max := 1 + next()%5
				buf := make([]byte, size())
				lens, err := q.GetMany(buf, max, 0)
				switch {
				case len(model) == 0:
					if !errors.Is(err, errs.ErrEmpty) {
						t.Fatalf("GetMany on empty: %v, %v", lens, err)
					}
				case len(model[0]) > len(buf):
					if !errors.Is(err, errs.ErrTooShort) || len(lens) != 1 || lens[0] != len(model[0]) {
						t.Fatalf("GetMany of %d bytes into %d: %v, %v", len(model[0]), len(buf), lens, err)
					}
				default:
					if err != nil {
						t.Fatalf("GetMany: %v", err)
					}
					off, k := 0, 0
					for k < max && k < len(model) && off+len(model[k]) <= len(buf) {
						off += len(model[k])
						k++
					}
					if len(lens) != k {
						t.Fatalf("GetMany(max %d, %d bytes) took %d, want %d", max, len(buf), len(lens), k)
					}
					off = 0
					for i, n := range lens {
						if !bytes.Equal(buf[off:off+n], model[i]) {
							t.Fatalf("GetMany message %d differs", i)
						}
						off += n
					}
					model = model[k:]
				}
			case 4: // Peek and Len
				n, ok := q.Peek()
				if ok != (len(model) > 0) || (ok && n != len(model[0])) {
					t.Fatalf("Peek = %d, %v with %d messages", n, ok, len(model))
				}
				if q.Len() != len(model) {
					t.Fatalf("Len = %d, want %d", q.Len(), len(model))
				}
			case 5: // TaskDone and Join
				err := q.TaskDone()
				if unfinished == 0 {
					if !errors.Is(err, errs.ErrValue) {
						t.Fatalf("TaskDone with no tasks: %v", err)
					}
				} else if err != nil {
					t.Fatalf("TaskDone: %v", err)
				} else {
					unfinished--
				}
				if ok, err := q.Join(0); err != nil || ok != (unfinished == 0) {
					t.Fatalf("Join(0) = %v, %v with %d unfinished", ok, err, unfinished)
				}
			}
			if err := queue.Check(q); err != nil {
				t.Fatal(err)
			}
		}
	})
}

package queue_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
)

// newQueue makes a queue with a ring of capacity bytes, closed at the end
// of the test.
func newQueue(t testing.TB, maxsize, capacity int) *queue.Queue {
	t.Helper()
	q, err := queue.NewCap(maxsize, capacity)
	if err != nil {
		t.Fatalf("NewCap(%d, %d): %v", maxsize, capacity, err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// pattern returns n bytes that differ for every (seed, n).
func pattern(seed, n int) []byte {
	b := make([]byte, n)
	x := byte(seed*131 + n)
	for i := range b {
		b[i] = x
		x = x*13 + 7
	}
	return b
}

func check(t *testing.T, q *queue.Queue) {
	t.Helper()
	if err := queue.Check(q); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func TestFIFO(t *testing.T) {
	q := newQueue(t, 0, 256)
	buf := make([]byte, 8192)
	// Interleave puts and gets so the ring wraps many times, with sizes that
	// hit every padding and both halves of a wrapped copy.
	sizes := []int{0, 1, 7, 8, 9, 15, 16, 17, 100, 255, 256, 257, 1000, 4095, 4096, 5000}
	var want [][]byte
	for round := range 40 {
		for i, n := range sizes {
			if (round+i)%3 == 0 {
				continue
			}
			m := pattern(round*100+i, n)
			if err := q.Put(m, 0); err != nil {
				t.Fatalf("Put(%d bytes): %v", n, err)
			}
			want = append(want, m)
		}
		for len(want) > round%4 {
			n, err := q.Get(buf, 0)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if !bytes.Equal(buf[:n], want[0]) {
				t.Fatalf("round %d: got %d bytes, want %d bytes of %v", round, n, len(want[0]), want[0][:min(8, len(want[0]))])
			}
			want = want[1:]
		}
		if q.Len() != len(want) {
			t.Fatalf("Len = %d, want %d", q.Len(), len(want))
		}
		check(t, q)
	}
}

func TestWrapWithoutGrowth(t *testing.T) {
	q := newQueue(t, 0, 1024)
	buf := make([]byte, 1024)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range 5000 {
		m := pattern(i, rng.IntN(300))
		if err := q.Put(m, 0); err != nil {
			t.Fatal(err)
		}
		n, err := q.Get(buf, 0)
		if err != nil || !bytes.Equal(buf[:n], m) {
			t.Fatalf("message %d: %d bytes, %v", i, n, err)
		}
	}
	if s := queue.StatsOf(q); s.Grows != 0 || s.Capacity != 1024 {
		t.Errorf("ring grew to %d bytes (%d times) with at most one message in it", s.Capacity, s.Grows)
	}
}

// TestGrowWrapped grows rings whose data wraps, at every offset of the
// head, and checks nothing moves out of order.
func TestGrowWrapped(t *testing.T) {
	for shift := range 40 {
		q := newQueue(t, 0, 256)
		buf := make([]byte, 4096)
		// Advance head and tail to 8*shift*7 mod stuff, then fill so the
		// data wraps, then force growth with a big message.
		for i := range shift * 7 {
			q.Put(pattern(i, 8*(i%5)), 0)
			q.Get(buf, 0)
		}
		var want [][]byte
		for i := range 6 {
			m := pattern(shift*10+i, 20+i)
			want = append(want, m)
			if err := q.Put(m, 0); err != nil {
				t.Fatal(err)
			}
		}
		big := pattern(shift, 1000+shift*16)
		want = append(want, big)
		if err := q.Put(big, 0); err != nil {
			t.Fatal(err)
		}
		if s := queue.StatsOf(q); s.Capacity <= 256 {
			t.Fatalf("capacity %d after a put of %d bytes", s.Capacity, len(big))
		}
		check(t, q)
		for i, w := range want {
			n, err := q.Get(buf, 0)
			if err != nil || !bytes.Equal(buf[:n], w) {
				t.Fatalf("shift %d: message %d: %d bytes, %v", shift, i, n, err)
			}
		}
	}
}

func TestGetTimeout(t *testing.T) {
	q := newQueue(t, 0, 4096)
	buf := make([]byte, 16)
	if _, err := q.Get(buf, 0); !errors.Is(err, errs.ErrEmpty) {
		t.Fatalf("Get(0) on empty: %v", err)
	}
	if code, _ := errs.CodeOf(errs.ErrEmpty); code != errs.CodeEmpty {
		t.Fatalf("code %d", code)
	}
	const timeout = 100 * time.Millisecond
	t0 := time.Now()
	_, err := q.Get(buf, timeout)
	if d := time.Since(t0); !errors.Is(err, errs.ErrEmpty) || d < timeout || d > timeout+2*time.Second {
		t.Fatalf("Get(%v) on empty: %v after %v", timeout, err, d)
	}
	if _, ok := q.Peek(); ok {
		t.Fatal("Peek on empty reported a message")
	}
}

func TestPutFull(t *testing.T) {
	q := newQueue(t, 2, 4096)
	if q.Cap() != 2 {
		t.Fatalf("Cap = %d", q.Cap())
	}
	for i := range 2 {
		if err := q.Put([]byte{byte(i)}, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Put([]byte{2}, 0); !errors.Is(err, errs.ErrFull) {
		t.Fatalf("Put(0) on a full queue: %v", err)
	}
	const timeout = 100 * time.Millisecond
	t0 := time.Now()
	err := q.Put([]byte{2}, timeout)
	if d := time.Since(t0); !errors.Is(err, errs.ErrFull) || d < timeout || d > timeout+2*time.Second {
		t.Fatalf("Put(%v) on a full queue: %v after %v", timeout, err, d)
	}
	buf := make([]byte, 4)
	if n, err := q.Get(buf, 0); err != nil || n != 1 || buf[0] != 0 {
		t.Fatalf("Get = %d %v %v", n, buf[:n], err)
	}
	if err := q.Put([]byte{2}, 0); err != nil {
		t.Fatalf("Put after a Get made room: %v", err)
	}
	if q.Len() != 2 {
		t.Fatalf("Len = %d", q.Len())
	}
}

func TestBlockedCallsWake(t *testing.T) {
	q := newQueue(t, 1, 4096)
	done := make(chan error, 1)
	buf := make([]byte, 8)
	go func() {
		n, err := q.Get(buf, 10*time.Second)
		if err == nil && (n != 3 || string(buf[:n]) != "abc") {
			err = errors.New("wrong message " + string(buf[:n]))
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := q.Put([]byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked Get: %v", err)
	}

	// A putter blocked on a full bounded queue wakes when a get makes room.
	q.Put([]byte("x"), 0)
	go func() { done <- q.Put([]byte("y"), 10*time.Second) }()
	time.Sleep(50 * time.Millisecond)
	if n, err := q.Get(buf, 0); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("Get = %q, %v", buf[:n], err)
	}
	if err := <-done; err != nil {
		t.Fatalf("blocked Put: %v", err)
	}
	if n, err := q.Get(buf, time.Second); err != nil || string(buf[:n]) != "y" {
		t.Fatalf("Get = %q, %v", buf[:n], err)
	}
}

func TestTooShort(t *testing.T) {
	q := newQueue(t, 0, 4096)
	m := pattern(1, 100)
	q.Put(m, 0)
	q.Put([]byte("next"), 0)
	n, err := q.Get(make([]byte, 99), 0)
	if !errors.Is(err, errs.ErrTooShort) || n != 100 {
		t.Fatalf("Get into 99 bytes = %d, %v", n, err)
	}
	if code, _ := errs.CodeOf(err); code != errs.CodeTooShort {
		t.Fatalf("code %d", code)
	}
	if q.Len() != 2 {
		t.Fatalf("Len = %d after a short Get", q.Len())
	}
	if n, ok := q.Peek(); !ok || n != 100 {
		t.Fatalf("Peek = %d, %v", n, ok)
	}
	lens, err := q.GetMany(make([]byte, 50), 5, 0)
	if !errors.Is(err, errs.ErrTooShort) || len(lens) != 1 || lens[0] != 100 {
		t.Fatalf("GetMany into 50 bytes = %v, %v", lens, err)
	}
	buf := make([]byte, 100)
	if n, err := q.Get(buf, 0); err != nil || !bytes.Equal(buf[:n], m) {
		t.Fatalf("Get = %d, %v", n, err)
	}
	if n, err := q.Get(buf, 0); err != nil || string(buf[:n]) != "next" {
		t.Fatalf("Get = %q, %v", buf[:n], err)
	}
}

func TestPutManyGetMany(t *testing.T) {
	q := newQueue(t, 0, 256)
	var msgs [][]byte
	for i := range 10 {
		msgs = append(msgs, pattern(i, 10+i*10))
	}
	if n, err := q.PutMany(msgs, 0); n != 10 || err != nil {
		t.Fatalf("PutMany = %d, %v", n, err)
	}
	if n, err := q.PutMany(nil, 0); n != 0 || err != nil {
		t.Fatalf("PutMany(nil) = %d, %v", n, err)
	}
	// 10+20+30 = 60 fit in 75 bytes, 40 more do not.
	buf := make([]byte, 75)
	lens, err := q.GetMany(buf, 10, 0)
	if err != nil || len(lens) != 3 {
		t.Fatalf("GetMany(75 bytes) = %v, %v", lens, err)
	}
	off := 0
	for i, n := range lens {
		if !bytes.Equal(buf[off:off+n], msgs[i]) {
			t.Fatalf("message %d differs", i)
		}
		off += n
	}
	buf = make([]byte, 10000)
	if lens, err = q.GetMany(buf, 2, 0); err != nil || len(lens) != 2 || lens[0] != 40 || lens[1] != 50 {
		t.Fatalf("GetMany(max 2) = %v, %v", lens, err)
	}
	if lens, err = q.GetMany(buf, 100, 0); err != nil || len(lens) != 5 {
		t.Fatalf("GetMany(rest) = %v, %v", lens, err)
	}
	if _, err = q.GetMany(buf, 100, 0); !errors.Is(err, errs.ErrEmpty) {
		t.Fatalf("GetMany on empty: %v", err)
	}
	if _, err = q.GetMany(buf, 0, 0); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("GetMany(max 0): %v", err)
	}
	check(t, q)
}

func TestPutManyBounded(t *testing.T) {
	q := newQueue(t, 3, 4096)
	msgs := [][]byte{{1}, {2}, {3}, {4}, {5}}
	n, err := q.PutMany(msgs, 50*time.Millisecond)
	if n != 3 || !errors.Is(err, errs.ErrFull) {
		t.Fatalf("PutMany of 5 into maxsize 3 = %d, %v", n, err)
	}
	// With a consumer the rest get through.
	done := make(chan error)
	go func() {
		_, err := q.PutMany(msgs[3:], 10*time.Second)
		done <- err
	}()
	buf := make([]byte, 1)
	for want := byte(1); want <= 5; want++ {
		if n, err := q.Get(buf, 10*time.Second); err != nil || n != 1 || buf[0] != want {
			t.Fatalf("Get = %v, %v, want %d", buf[:n], err, want)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestGrowthUnderLoad has a producer much faster than its consumer on an
// unbounded queue, so the ring grows while messages are in flight.
func TestGrowthUnderLoad(t *testing.T) {
	q := newQueue(t, 0, 4096)
	const n = 20000
	go func() {
		for i := range n {
			if err := q.Put(makeMsg(nil, 0, uint64(i), 200+i%1000), -1); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	buf := make([]byte, 2048)
	for i := range n {
		k, err := q.Get(buf, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if _, seq, err := checkMsg(buf[:k]); err != nil || seq != uint64(i) {
			t.Fatalf("message %d: seq %d, %v", i, seq, err)
		}
		if i%1000 == 0 {
			time.Sleep(time.Millisecond) // let the producer get ahead
		}
	}
	s := queue.StatsOf(q)
	if s.Grows == 0 {
		t.Errorf("the ring never grew: %+v", s)
	}
	t.Logf("%+v", s)
	check(t, q)
}

// TestShrink checks that a ring grown past keepResident gives its memory
// back when it drains, and works on afterwards.
func TestShrink(t *testing.T) {
	q := newQueue(t, 0, 4096)
	m := pattern(1, 4000)
	for range 16000 { // ~64 MB
		if err := q.Put(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	full := queue.StatsOf(q)
	if full.Capacity < 64<<20 || full.Allocated < 60<<20 {
		t.Fatalf("after 64 MB of puts: %+v", full)
	}
	buf := make([]byte, 8192)
	for range 16000 {
		if n, err := q.Get(buf, 0); err != nil || !bytes.Equal(buf[:n], m) {
			t.Fatalf("Get: %d, %v", n, err)
		}
	}
	drained := queue.StatsOf(q)
	if drained.Shrinks == 0 || drained.Capacity > 8<<20 || drained.Allocated > full.Allocated/4 {
		t.Fatalf("after draining: %+v (full: %+v)", drained, full)
	}
	for i := range 3000 {
		m := pattern(i, i%5000)
		if err := q.Put(m, 0); err != nil {
			t.Fatal(err)
		}
		if n, err := q.Get(buf, 0); err != nil || !bytes.Equal(buf[:n], m) {
			t.Fatalf("after the shrink, message %d: %d, %v", i, n, err)
		}
	}
	check(t, q)
}

// TestKeepResident checks that a ring grown no further than keepResident
// keeps its pages when it drains, so that the next puts do not fault them
// in again.
func TestKeepResident(t *testing.T) {
	q := newQueue(t, 0, 4096)
	m := pattern(1, 4000)
	for range 500 { // ~2 MB
		if err := q.Put(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	full := queue.StatsOf(q)
	buf := make([]byte, 8192)
	for range 500 {
		if _, err := q.Get(buf, 0); err != nil {
			t.Fatal(err)
		}
	}
	if s := queue.StatsOf(q); s.Shrinks != 0 || s.Capacity != full.Capacity || s.Allocated < full.Allocated {
		t.Fatalf("after draining: %+v (full: %+v)", s, full)
	}
}

func TestLargeMessage(t *testing.T) {
	sizes := []int{64 << 20}
	if !testing.Short() && os.Getenv("MPGO_BIG") != "" {
		sizes = append(sizes, 1<<30)
	}
	for _, size := range sizes {
		q := newQueue(t, 0, 4096)
		q.Put([]byte("before"), 0)
		m := make([]byte, size)
		for i := 0; i < size; i += 4096 {
			m[i] = byte(i >> 12)
		}
		m[size-1] = 0xff
		if err := q.Put(m, 0); err != nil {
			t.Fatalf("Put(%d bytes): %v", size, err)
		}
		q.Put([]byte("after"), 0)
		small := make([]byte, 16)
		if n, err := q.Get(small, 0); err != nil || string(small[:n]) != "before" {
			t.Fatalf("Get = %q, %v", small[:n], err)
		}
		if n, ok := q.Peek(); !ok || n != size {
			t.Fatalf("Peek = %d, %v", n, ok)
		}
		if n, err := q.Get(small, 0); n != size || !errors.Is(err, errs.ErrTooShort) {
			t.Fatalf("Get into 16 bytes = %d, %v", n, err)
		}
		buf := make([]byte, size)
		if n, err := q.Get(buf, 0); err != nil || n != size || !bytes.Equal(buf, m) {
			t.Fatalf("Get of %d bytes = %d, %v", size, n, err)
		}
		if n, err := q.Get(small, 0); err != nil || string(small[:n]) != "after" {
			t.Fatalf("Get = %q, %v", small[:n], err)
		}
		q.Close()
	}
}

func TestTaskDoneJoin(t *testing.T) {
	q := newQueue(t, 0, 4096)
	if ok, err := q.Join(0); !ok || err != nil {
		t.Fatalf("Join on a fresh queue = %v, %v", ok, err)
	}
	for range 3 {
		q.Put([]byte("task"), 0)
	}
	if ok, err := q.Join(0); ok || err != nil {
		t.Fatalf("Join(0) with 3 tasks = %v, %v", ok, err)
	}
	t0 := time.Now()
	if ok, err := q.Join(50 * time.Millisecond); ok || err != nil || time.Since(t0) < 50*time.Millisecond {
		t.Fatalf("Join(50ms) with 3 tasks = %v, %v after %v", ok, err, time.Since(t0))
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if ok, err := q.Join(10 * time.Second); !ok || err != nil {
				t.Errorf("Join = %v, %v", ok, err)
			}
		})
	}
	buf := make([]byte, 8)
	for range 3 {
		time.Sleep(10 * time.Millisecond)
		q.Get(buf, 0)
		if err := q.TaskDone(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	err := q.TaskDone()
	if !errors.Is(err, errs.ErrValue) {
		t.Fatalf("TaskDone once too often: %v", err)
	}
	if code, _ := errs.CodeOf(err); code != errs.CodeValue {
		t.Fatalf("code %d", code)
	}
}

func TestClose(t *testing.T) {
	q, err := queue.New(0)
	if err != nil {
		t.Fatal(err)
	}
	if q.FD() < 0 || q.Ref().FD != q.FD() || q.Ref().Pid != os.Getpid() {
		t.Fatalf("FD %d, Ref %v", q.FD(), q.Ref())
	}
	done := make(chan error)
	go func() {
		_, err := q.Get(make([]byte, 8), -1)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, errs.ErrClosed) {
			t.Fatalf("Get blocked across Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake a blocked Get")
	}
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := q.Put(nil, 0); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := q.Get(nil, 0); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := q.TaskDone(); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("TaskDone after Close: %v", err)
	}
	if q.FD() != -1 || q.Len() != 0 {
		t.Fatalf("FD %d, Len %d after Close", q.FD(), q.Len())
	}
}

func TestShutdown(t *testing.T) {
	q := newQueue(t, 1, 4096)
	q.Put([]byte("last"), 0)
	done := make(chan error)
	go func() { done <- q.Put([]byte("blocked"), -1) }()
	time.Sleep(50 * time.Millisecond)
	if err := q.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Put blocked across Shutdown: %v", err)
	}
	buf := make([]byte, 8)
	if n, err := q.Get(buf, 0); err != nil || string(buf[:n]) != "last" {
		t.Fatalf("Get after Shutdown = %q, %v", buf[:n], err)
	}
	if _, err := q.Get(buf, -1); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Get on a drained shut-down queue: %v", err)
	}
}

func TestAttach(t *testing.T) {
	q := newQueue(t, 0, 256)
	h, err := queue.Attach(q.Ref())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Ref().FD == q.Ref().FD {
		t.Fatalf("attached handle shares descriptor %d", h.FD())
	}
	// Grow through one handle, read through the other: it must remap.
	big := pattern(1, 5000)
	q.Put([]byte("small"), 0)
	if err := h.Put(big, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	if n, err := q.Get(buf, 0); err != nil || string(buf[:n]) != "small" {
		t.Fatalf("Get = %q, %v", buf[:n], err)
	}
	if n, err := q.Get(buf, 0); err != nil || !bytes.Equal(buf[:n], big) {
		t.Fatalf("Get of the message that grew the ring = %d, %v", n, err)
	}
	// A third handle attaches through the second one's Ref.
	h2, err := queue.Attach(h.Ref())
	if err != nil {
		t.Fatal(err)
	}
	h2.Put([]byte("via h2"), 0)
	h2.Close()
	if n, err := h.Get(buf, 0); err != nil || string(buf[:n]) != "via h2" {
		t.Fatalf("Get = %q, %v", buf[:n], err)
	}
}

func TestAttachErrors(t *testing.T) {
	if _, err := queue.Attach(shm.Ref{Pid: 0, FD: 3}); !errors.Is(err, errs.ErrValue) {
		t.Errorf("Attach(pid 0): %v", err)
	}
	if _, err := queue.Attach(shm.Ref{Pid: os.Getpid(), FD: 1 << 20}); !errors.Is(err, errs.ErrClosed) {
		t.Errorf("Attach(no such fd): %v", err)
	}
	seg, err := shm.Create("not-a-queue", 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if _, err := queue.Attach(seg.Ref()); !errors.Is(err, errs.ErrValue) {
		t.Errorf("Attach(not a queue): %v", err)
	}
	if _, err := queue.NewCap(0, 100); !errors.Is(err, errs.ErrValue) {
		t.Errorf("NewCap(capacity 100): %v", err)
	}
}

func TestHammerQueue(t *testing.T) {
	per := 5000
	if testing.Short() {
		per = 1000
	}
	for _, c := range []struct {
		name              string
		maxsize, capacity int
		attach            bool
	}{
		{"unbounded", 0, queue.DefaultCapacity, false},
		{"growing", 0, 256, false},
		{"bounded", 8, 4096, false},
		{"handles", 16, 1024, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			q := newQueue(t, c.maxsize, c.capacity)
			if err := HammerQueue(q, 4, 4, per, c.attach); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPutVLaysPartsEndToEnd(t *testing.T) {
	q, err := queue.New(0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.PutV([][]byte{[]byte("head-"), nil, []byte("body"), []byte("!")}, 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := q.Get(buf, 0)
	if err != nil || string(buf[:n]) != "head-body!" {
		t.Fatalf("Get = %q, %v", buf[:n], err)
	}
}

func TestGetClaim(t *testing.T) {
	q, err := queue.New(0)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, m := range []string{"first", "second"} {
		if err := q.Put([]byte(m), -1); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 64)
	var positions []uint64
	var claimed []string
	for range 2 {
		n, err := q.GetClaim(buf, 0, func(pos uint64, msg []byte) {
			positions = append(positions, pos)
			claimed = append(claimed, string(msg))
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:n]); got != claimed[len(claimed)-1] {
			t.Fatalf("got %q, claimed %q", got, claimed[len(claimed)-1])
		}
	}
	if claimed[0] != "first" || claimed[1] != "second" || positions[1] <= positions[0] {
		t.Fatalf("claims %q at %v", claimed, positions)
	}
	for _, pos := range positions {
		if taken, err := q.Taken(pos); err != nil || !taken {
			t.Fatalf("Taken(%d) = %v, %v", pos, taken, err)
		}
	}
	if err := q.Put([]byte("third"), -1); err != nil {
		t.Fatal(err)
	}
	// A claim the get did not commit (the claimer died first) leaves the
	// message in place: Taken of the head position is false.
	next := positions[1] + 8 + 8 // "second" is one 8-byte word after its length
	if taken, err := q.Taken(next); err != nil || taken {
		t.Fatalf("Taken(%d) of a message still queued = %v, %v", next, taken, err)
	}
	if _, err := q.GetClaim(buf[:2], 0, func(uint64, []byte) { t.Fatal("claim on a short buffer") }); !errors.Is(err, errs.ErrTooShort) {
		t.Fatalf("short buffer: %v", err)
	}
}

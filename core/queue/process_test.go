package queue_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/queue"
)

func TestChildProduces(t *testing.T) {
	q := newQueue(t, 0, 4096) // small, so the child grows it under the parent
	const n = 5000
	cmd, _ := startChild(t, "produce", q, strconv.Itoa(n))
	buf := make([]byte, 1<<16)
	for want := range n {
		k, err := q.Get(buf, 10*time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", want, err)
		}
		if id, seq, err := checkMsg(buf[:k]); err != nil || id != 1 || seq != uint64(want) {
			t.Fatalf("message %d: producer %d seq %d: %v", want, id, seq, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("producer: %v", err)
	}
	check(t, q)
}

func TestChildConsumes(t *testing.T) {
	q := newQueue(t, 64, 4096) // bounded, so the parent blocks on the child
	const n = 5000
	cmd, _ := startChild(t, "consume", q, strconv.Itoa(n))
	rng := rand.New(rand.NewPCG(1, 2))
	for seq := range n {
		if err := q.Put(makeMsg(nil, 1, uint64(seq), msgSize(rng)), 10*time.Second); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("consumer: %v", err)
	}
	if q.Len() != 0 {
		t.Fatalf("Len = %d", q.Len())
	}
	check(t, q)
}

// TestKilledProducers SIGKILLs producers at random moments of a stream of
// puts, often while they hold the lock or grow the ring. Every message the
// parent gets must be intact, each producer's messages must arrive in order
// with no gaps (only the one in flight may be lost), and the queue must
// work on.
func TestKilledProducers(t *testing.T) {
	q := newQueue(t, 0, 1<<16)
	const kills = 20
	next := make([]uint64, kills) // the sequence expected next from each producer
	var stop sync.WaitGroup
	var stopping = make(chan struct{})
	errc := make(chan error, 1)
	stop.Go(func() {
		buf := make([]byte, 1<<17)
		for {
			k, err := q.Get(buf, 100*time.Millisecond)
			if errors.Is(err, errs.ErrEmpty) {
				select {
				case <-stopping:
					return
				default:
					continue
				}
			}
			if err == nil {
				var id, seq uint64
				id, seq, err = checkMsg(buf[:k])
				if err == nil && (id >= kills || seq != next[id]) {
					err = fmt.Errorf("producer %d: seq %d, want %d", id, seq, next[id])
				}
				if err == nil {
					next[id]++
					continue
				}
			}
			errc <- err
			return
		}
	})
	rng := rand.New(rand.NewPCG(7, 7))
	for id := range kills {
		cmd, out := startChild(t, "stream", q, strconv.Itoa(id))
		if s := readLine(t, out); s != "ready" {
			t.Fatalf("child said %q", s)
		}
		time.Sleep(time.Duration(rng.IntN(30000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	close(stopping)
	stop.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	check(t, q)
	total := uint64(0)
	for _, n := range next {
		total += n
	}
	s := queue.StatsOf(q)
	t.Logf("%d messages from %d killed producers; %+v", total, kills, s)
	if total == 0 {
		t.Fatal("no messages got through")
	}
	buf := make([]byte, 16)
	for i := range 100 {
		m := []byte(strconv.Itoa(i))
		if err := q.Put(m, 0); err != nil {
			t.Fatal(err)
		}
		if n, err := q.Get(buf, time.Second); err != nil || string(buf[:n]) != string(m) {
			t.Fatalf("after the kills: Get = %q, %v", buf[:n], err)
		}
	}
}

// TestKilledConsumers kills consumers at random moments while they take
// messages, half of them big enough to be copied out of the lock: each kill
// loses at most the message its consumer held, and the ring stays sound.
func TestKilledConsumers(t *testing.T) {
	q := newQueue(t, 0, 1<<16)
	const kills = 20
	rng := rand.New(rand.NewPCG(9, 9))
	var put uint64
	buf := make([]byte, 0, 1<<18)
	fill := func() {
		for q.Len() < 64 {
			size := msgSize(rng)
			if rng.IntN(2) == 0 {
				size = 64<<10 + rng.IntN(1<<17)
			}
			if err := q.Put(makeMsg(buf, 1, put, size), -1); err != nil {
				t.Fatal(err)
			}
			put++
		}
	}
	for range kills {
		fill()
		cmd, out := startChild(t, "drain", q, "")
		if s := readLine(t, out); s != "ready" {
			t.Fatalf("child said %q", s)
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	check(t, q)
	// What is left comes out whole and in order.
	got := make([]byte, 1<<18)
	last := int64(-1)
	for q.Len() > 0 {
		k, err := q.Get(got, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, seq, err := checkMsg(got[:k])
		if err != nil || int64(seq) <= last {
			t.Fatalf("after the kills: seq %d after %d: %v", seq, last, err)
		}
		last = int64(seq)
	}
	fill()
	check(t, q)
}

// TestCrashPoints stops a child at each point of a put's or a get's commit,
// kills it there, and checks the operation either happened completely or
// not at all: before the journal is committed it did not, after it did.
func TestCrashPoints(t *testing.T) {
	for _, op := range []string{"put", "get"} {
		for _, stage := range []int{queue.StageCopied, queue.StageJournaled, queue.StageApplying} {
			t.Run(fmt.Sprintf("%s:%d", op, stage), func(t *testing.T) {
				q := newQueue(t, 0, 4096)
				mine := makeMsg(nil, 3, 0, 500)
				if op == "get" {
					q.Put(mine, 0)
				}
				cmd, out := startChild(t, "crash", q, fmt.Sprintf("%s:%d", op, stage))
				if s := readLine(t, out); s != "stopped" {
					t.Fatalf("child said %q", s)
				}
				cmd.Process.Kill()
				cmd.Wait()
				happened := stage != queue.StageCopied
				q.Peek() // takes the lock over from the dead child
				buf := make([]byte, 2048)
				n, err := q.Get(buf, 0)
				var want uint64 = 3 // the message the parent put
				if op == "put" {
					want = 7 // the message the child put
				}
				if (op == "put") == happened {
					id, _, cerr := checkMsg(buf[:n])
					if err != nil || cerr != nil || id != want {
						t.Fatalf("Get = producer %d, %v, %v; want producer %d's message", id, err, cerr, want)
					}
				} else if !errors.Is(err, errs.ErrEmpty) {
					t.Fatalf("Get = %d bytes, %v; want nothing", n, err)
				}
				if s := queue.StatsOf(q); s.Takeovers != 1 || (s.Redos == 1) != (stage != queue.StageCopied) {
					t.Errorf("stats %+v", s)
				}
				check(t, q)
				if err := q.Put([]byte("on"), 0); err != nil {
					t.Fatal(err)
				}
				if n, err := q.Get(buf, 0); err != nil || string(buf[:n]) != "on" {
					t.Fatalf("Get = %q, %v", buf[:n], err)
				}
			})
		}
	}
}

// TestCrashInReservation kills a child in a put of a big message, which
// copies it outside the lock: after reserving its record, and after copying
// it, holding the lock to finish. Either way the message is lost, only it:
// getters skip it, a message put after it arrives, Join does not wait for
// it, and the ring can grow again.
func TestCrashInReservation(t *testing.T) {
	for _, stage := range []int{queue.StageReserved, queue.StageFilled} {
		t.Run(strconv.Itoa(stage), func(t *testing.T) {
			q := newQueue(t, 0, 4096)
			cmd, out := startChild(t, "crash", q, fmt.Sprintf("bigput:%d", stage))
			if s := readLine(t, out); s != "stopped" {
				t.Fatalf("child said %q", s)
			}
			if stage == queue.StageReserved { // the lock is free: put behind it
				if err := q.Put([]byte("after"), 0); err != nil {
					t.Fatal(err)
				}
			}
			cmd.Process.Kill()
			cmd.Wait()
			if stage == queue.StageFilled {
				if err := q.Put([]byte("after"), 0); err != nil {
					t.Fatal(err)
				}
			}
			buf := make([]byte, 1<<20)
			n, err := q.Get(buf, 5*time.Second)
			if err != nil || string(buf[:n]) != "after" {
				t.Fatalf("Get = %d bytes, %v; want the message put after the dead one", n, err)
			}
			if q.Len() != 0 {
				t.Fatalf("Len = %d", q.Len())
			}
			if err := q.TaskDone(); err != nil { // "after"'s
				t.Fatal(err)
			}
			if ok, err := q.Join(0); !ok || err != nil {
				t.Fatalf("Join = %v, %v: the lost message is waited for", ok, err)
			}
			check(t, q)
			big := make([]byte, 1<<20) // grows the ring, and is reserved
			if err := q.Put(big, 0); err != nil {
				t.Fatal(err)
			}
			if n, err := q.Get(buf, 0); err != nil || n != len(big) {
				t.Fatalf("Get = %d, %v", n, err)
			}
			check(t, q)
		})
	}
}

// TestIdleGetUsesNoCPU checks a Get blocked on an empty queue sleeps in the
// kernel instead of spinning. The bound is generous: a spinning waiter
// would use the whole second.
func TestIdleGetUsesNoCPU(t *testing.T) {
	q := newQueue(t, 0, 4096)
	cmd, out := startChild(t, "idle", q, "")
	f := strings.Fields(readLine(t, out))
	if err := cmd.Wait(); err != nil || len(f) != 2 {
		t.Fatalf("child: %v, %q", err, f)
	}
	cpu, _ := strconv.ParseInt(f[0], 10, 64)
	wall, _ := strconv.ParseInt(f[1], 10, 64)
	t.Logf("blocked %v, CPU %v", time.Duration(wall), time.Duration(cpu))
	if time.Duration(wall) < time.Second {
		t.Errorf("Get(1s) returned after %v", time.Duration(wall))
	}
	if time.Duration(cpu) > 50*time.Millisecond {
		t.Errorf("a Get blocked for %v used %v of CPU", time.Duration(wall), time.Duration(cpu))
	}
}

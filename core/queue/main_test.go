package queue_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
)

// roleEnv names the part a re-run test binary plays; refEnv passes it the
// queue's Ref and argEnv an argument.
const (
	roleEnv = "MPGO_QUEUE_TEST_ROLE"
	refEnv  = "MPGO_QUEUE_TEST_REF"
	argEnv  = "MPGO_QUEUE_TEST_ARG"
)

// TestMain lets the test binary impersonate the other processes of a
// cross-process test.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if err := child(role, os.Getenv(refEnv), os.Getenv(argEnv)); err != nil {
			fmt.Fprintln(os.Stderr, role+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child plays role on the queue ref names.
func child(role, ref, arg string) error {
	r, err := shm.ParseRef(ref)
	if err != nil {
		return err
	}
	q, err := queue.Attach(r)
	if err != nil {
		return err
	}
	defer q.Close()
	switch role {
	case "produce": // put arg messages as producer 1
		n, _ := strconv.Atoi(arg)
		rng := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 0, 1<<16)
		for seq := range n {
			if err := q.Put(makeMsg(buf, 1, uint64(seq), msgSize(rng)), -1); err != nil {
				return err
			}
		}
	case "consume": // get arg messages of producer 1, in order
		n, _ := strconv.Atoi(arg)
		buf := make([]byte, 1<<16)
		for want := range n {
			k, err := q.Get(buf, 10*time.Second)
			if err != nil {
				return fmt.Errorf("message %d: %w", want, err)
			}
			id, seq, err := checkMsg(buf[:k])
			if err != nil || id != 1 || seq != uint64(want) {
				return fmt.Errorf("message %d: producer %d seq %d: %v", want, id, seq, err)
			}
		}
	case "stream": // put messages as producer arg until killed
		id, _ := strconv.ParseUint(arg, 10, 64)
		rng := rand.New(rand.NewPCG(id, 3))
		buf := make([]byte, 0, 1<<17)
		fmt.Println("ready")
		for seq := uint64(0); ; seq++ {
			size := msgSize(rng)
			if rng.IntN(2) == 0 {
				size = minMsg + rng.IntN(1<<17-minMsg)
			}
			if err := q.Put(makeMsg(buf, id, seq, size), -1); err != nil {
				return err
			}
		}
	case "drain": // get messages until killed, half of them big (copied outside the lock)
		buf := make([]byte, 1<<18)
		fmt.Println("ready")
		for {
			if _, err := q.Get(buf, -1); err != nil {
				return err
			}
		}
	case "crash": // stop in a put or get at the stage in arg ("put:2"), until killed
		op, s, _ := strings.Cut(arg, ":")
		stage, _ := strconv.Atoi(s)
		queue.CrashAt(stage, func() {
			fmt.Println("stopped")
			time.Sleep(time.Hour)
		})
		if op == "put" {
			return q.Put(makeMsg(nil, 7, 0, 1000), -1)
		}
		if op == "bigput" { // through a reservation
			return q.Put(makeMsg(nil, 7, 0, 100<<10), -1)
		}
		_, err := q.Get(make([]byte, 1<<16), -1)
		return err
	case "idle": // block in a Get for a second and print the CPU time it took
		var before, after unix.Rusage
		buf := make([]byte, 64)
		unix.Getrusage(unix.RUSAGE_SELF, &before)
		t0 := time.Now()
		if _, err := q.Get(buf, time.Second); !errors.Is(err, errs.ErrEmpty) {
			return fmt.Errorf("Get on an empty queue: %v", err)
		}
		wall := time.Since(t0)
		unix.Getrusage(unix.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		fmt.Println(int64(cpu), int64(wall))
	default:
		return fmt.Errorf("unknown role")
	}
	return nil
}

// startChild re-runs the test binary as role on q with arg, and returns it
// with a reader of its stdout. The child is killed and reaped when the test
// ends, and dies with this process in any case.
func startChild(t *testing.T, role string, q *queue.Queue, arg string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	// Under -race a process sleeps a second at exit, unless told not to.
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0",
		roleEnv+"="+role, refEnv+"="+q.Ref().String(), argEnv+"="+arg)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, bufio.NewReader(out)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child: %v", err)
	}
	return strings.TrimSpace(s)
}

// Test messages carry who sent them and a checksum:
//
//	off 0    uint64  producer id
//	off 8    uint64  sequence number within the producer
//	off 16   bytes   filler derived from id and sequence
//	off n-4  uint32  CRC-32 (IEEE) of bytes [0, n-4)
const minMsg = 20

// filler is the bytes test messages are filled with, from an offset that
// depends on the message, copied rather than computed so that producers
// spend their time in the queue.
var filler = func() []byte {
	b := make([]byte, 256+1<<17)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}()

// msgSize draws a message size, mostly small, sometimes a few KB.
func msgSize(rng *rand.Rand) int {
	if rng.IntN(16) == 0 {
		return minMsg + rng.IntN(8192)
	}
	return minMsg + rng.IntN(200)
}

// makeMsg builds a test message of size bytes (at least minMsg) in buf's
// storage.
func makeMsg(buf []byte, id, seq uint64, size int) []byte {
	b := append(buf[:0], make([]byte, size)...)
	binary.LittleEndian.PutUint64(b, id)
	binary.LittleEndian.PutUint64(b[8:], seq)
	copy(b[16:size-4], filler[(id*31+seq*7)%256:])
	binary.LittleEndian.PutUint32(b[size-4:], crc32.ChecksumIEEE(b[:size-4]))
	return b
}

// checkMsg verifies a test message and returns its producer and sequence.
func checkMsg(b []byte) (id, seq uint64, err error) {
	if len(b) < minMsg {
		return 0, 0, fmt.Errorf("message of %d bytes", len(b))
	}
	n := len(b)
	if crc32.ChecksumIEEE(b[:n-4]) != binary.LittleEndian.Uint32(b[n-4:]) {
		return 0, 0, fmt.Errorf("message of %d bytes: bad checksum", n)
	}
	return binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]), nil
}

// HammerQueue runs producers goroutines that each put perProducer checked
// messages on q, singly and in batches, and consumers goroutines that get
// them, singly and in batches, through handles of their own when attach is
// set. It checks every message arrives intact exactly once, and that each
// consumer sees each producer's messages in order.
func HammerQueue(q *queue.Queue, producers, consumers, perProducer int, attach bool) error {
	total := int64(producers * perProducer)
	var got atomic.Int64
	var mu sync.Mutex
	seen := make([][]bool, producers)
	for i := range seen {
		seen[i] = make([]bool, perProducer)
	}
	// fail records the first error and stops every goroutine.
	var stop atomic.Bool
	errc := make(chan error, producers+consumers)
	fail := func(err error) {
		stop.Store(true)
		errc <- err
	}
	handle := func() (*queue.Queue, func(), error) {
		if !attach {
			return q, func() {}, nil
		}
		h, err := queue.Attach(q.Ref())
		if err != nil {
			return nil, nil, err
		}
		return h, func() { h.Close() }, nil
	}
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			h, done, err := handle()
			if err != nil {
				fail(err)
				return
			}
			defer done()
			rng := rand.New(rand.NewPCG(uint64(p), 5))
			for seq := 0; seq < perProducer && !stop.Load(); {
				if rng.IntN(4) == 0 {
					batch := make([][]byte, min(1+rng.IntN(8), perProducer-seq))
					for i := range batch {
						batch[i] = makeMsg(nil, uint64(p), uint64(seq+i), msgSize(rng))
					}
					n, err := h.PutMany(batch, 10*time.Second)
					seq += n
					if err != nil {
						fail(fmt.Errorf("producer %d: PutMany: %w", p, err))
						return
					}
					continue
				}
				if err := h.Put(makeMsg(nil, uint64(p), uint64(seq), msgSize(rng)), 10*time.Second); err != nil {
					fail(fmt.Errorf("producer %d: Put: %w", p, err))
					return
				}
				seq++
			}
		})
	}
	for c := range consumers {
		wg.Go(func() {
			h, done, err := handle()
			if err != nil {
				fail(err)
				return
			}
			defer done()
			rng := rand.New(rand.NewPCG(uint64(c), 6))
			last := make([]int64, producers)
			for i := range last {
				last[i] = -1
			}
			buf := make([]byte, 64<<10)
			accept := func(b []byte) error {
				id, seq, err := checkMsg(b)
				if err != nil {
					return err
				}
				if id >= uint64(producers) || seq >= uint64(perProducer) {
					return fmt.Errorf("message from producer %d seq %d", id, seq)
				}
				if int64(seq) <= last[id] {
					return fmt.Errorf("consumer %d: producer %d seq %d after %d", c, id, seq, last[id])
				}
				last[id] = int64(seq)
				mu.Lock()
				dup := seen[id][seq]
				seen[id][seq] = true
				mu.Unlock()
				if dup {
					return fmt.Errorf("producer %d seq %d delivered twice", id, seq)
				}
				got.Add(1)
				return nil
			}
			for got.Load() < total && !stop.Load() {
				if rng.IntN(4) == 0 {
					lens, err := h.GetMany(buf, 1+rng.IntN(16), 20*time.Millisecond)
					if errors.Is(err, errs.ErrEmpty) {
						continue
					}
					if err != nil {
						fail(fmt.Errorf("consumer %d: GetMany: %w", c, err))
						return
					}
					off := 0
					for _, n := range lens {
						if err := accept(buf[off : off+n]); err != nil {
							fail(err)
							return
						}
						off += n
					}
					continue
				}
				n, err := h.Get(buf, 20*time.Millisecond)
				if errors.Is(err, errs.ErrEmpty) {
					continue
				}
				if err != nil {
					fail(fmt.Errorf("consumer %d: Get: %w", c, err))
					return
				}
				if err := accept(buf[:n]); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	for p := range seen {
		for s, ok := range seen[p] {
			if !ok {
				return fmt.Errorf("producer %d seq %d never delivered", p, s)
			}
		}
	}
	if n := q.Len(); n != 0 {
		return fmt.Errorf("%d messages left over", n)
	}
	return queue.Check(q)
}

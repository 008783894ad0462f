// Package queue provides a multi-producer multi-consumer queue of byte
// messages in shared memory, the engine under mpgo's Queue, SimpleQueue and
// JoinableQueue. Go programs use it directly; Python reaches it through the
// C fast path, which calls capi's exports. The layout below is the contract
// for anything else that touches the memory (capi/include/mpgo.h).
//
// A queue is one memfd: a header page followed by a ring of length-prefixed
// messages. Every operation runs under a robust cross-process lock
// (futex.Mutex), and commits through a small redo journal in the header, so
// a process killed at any instant, even while holding the lock, loses at
// most the message it was putting or getting and never corrupts the ring:
// the next process to take the lock finishes or forgets what it left.
//
// An unbounded queue (maxsize 0) never fails a put for want of room: when a
// message does not fit, the putter waits a moment for getters to make room
// if they are draining the ring, and otherwise the ring doubles until it
// fits; every process remaps when it next takes the lock. When a ring grown
// past a few MB drains, it shrinks back and its file is truncated, so that
// a burst does not pin memory, while a smaller ring keeps its pages
// resident. maxsize bounds the number of messages, never their bytes.
//
// Waiters spin briefly and then sleep on a futex word in the header, so an
// idle consumer costs no CPU; puts and gets issue FUTEX_WAKE only when a
// sleeper is registered.
package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/internal/futex"
	"github.com/mpgo/mpgo/core/shm"
)

// Header layout: the first 4096 bytes of the memfd. All words are
// little-endian and naturally aligned; those marked (L) change only under
// the lock, whose protocol is futex.Mutex's.
//
//	off   0  uint64  magic "MPGOQUEU" (0x5545555147504f4d)
//	off   8  uint32  version (3; 2 had no take-out slots, 1 rings never
//	                 shrank; neither is attached)
//	off  12  uint32  flags (L): bit 0 shut down (puts fail, gets drain, then fail)
//	off  16  uint64  capacity (L): bytes of the data ring, a power of two >= 64.
//	                 Stored last when the ring grows, first when it shrinks
//	off  24  uint64  initial capacity: a drained ring larger than this and
//	                 than 8 MB (keepResident) shrinks back to the larger
//	off  32  uint64  maxsize: the most messages the queue holds; 0 unbounded
//	off  40  uint32  lock state: 0 free, 1 held, 2 held and a waiter may sleep
//	off  44  uint32  lock holder pid; 0 iff free (with off 40, one 64-bit word)
//	off  48  uint32  reserved, zero (a holder tid; the queue does not track it)
//	off  52  uint32  journal (L): 1 while off 96..127 hold a committed
//	                 operation that may not be applied yet, else 0
//	off  56  uint64  head (L): byte position of the oldest message
//	off  64  uint64  tail (L): byte position just past the newest message
//	off  72  uint64  count (L): messages in the ring
//	off  80  uint64  unfinished (L): tasks put and not yet marked done
//	off  88  uint64  reserved, zero (version 1 counted bytes written here)
//	off  96  uint64  journal head   \
//	off 104  uint64  journal tail    | the values head, tail, count and
//	off 112  uint64  journal count   | unfinished take when the journaled
//	off 120  uint64  journal unfin. /  operation is applied
//	off 128  uint32  not-empty futex word: bumped when a put wakes getters
//	off 132  uint32  getters registered to sleep on it
//	off 136  uint32  not-full futex word: bumped when a get wakes putters
//	off 140  uint32  putters registered to sleep on it
//	off 144  uint32  join futex word: bumped when unfinished reaches 0
//	off 148  uint32  joiners registered to sleep on it
//	off 152  uint64  reserved, zero
//	off 160  8 slots of 16 bytes (L), one per put in progress outside the
//	                 lock: uint64 position of its record, uint32 pid of its
//	                 putter (0: slot free), uint32 zero
//	off 288  8 slots of 16 bytes (L), one per get copying its message out
//	                 outside the lock: uint64 position of its record, uint32
//	                 pid of its getter (0: slot free), uint32 zero
//	off 416  ...     zero up to 4096
//	off 4096         the data ring, capacity bytes
//
// Positions are byte counts since the queue was created; they never wrap
// (2^64 bytes) and are multiples of 8. Position p lives at ring index
// p & (capacity-1). head <= tail and tail-head <= capacity. A message is a
// record of 8 + len rounded up to 8 bytes:
//
//	+0  uint64  payload length n, with flags: bit 63 pending (the payload
//	            is still being copied in), bit 62 dead (its putter died
//	            before it finished: getters drop the record)
//	+8  n bytes payload, then 0..7 bytes of padding
//
// The length word never straddles the ring's end (positions and capacity
// are multiples of 8); the payload may, and continues at index 0.
//
// Committing: an operation first copies payload bytes (a put into free ring
// space, a get out to the caller), then writes the new head, tail, count and
// unfinished to the journal words, stores journal = 1, stores the four live
// words and stores journal = 0. Whoever takes the lock and finds journal = 1
// applies the journal again (redo is idempotent). So an operation has
// happened iff journal = 1 was stored.
//
// Reserving: a put of a message of at least 64 KB (reserveMin) copies it
// outside the lock. Under the lock it takes a free slot (position = tail,
// then pid), writes the length word with the pending flag and commits tail,
// count and unfinished as any put does; it unlocks, copies the payload, and
// under the lock again stores the length word without the flag (one store:
// the message is then there) and frees the slot. Getters stop at a pending
// record and wait for it. A slot whose record is not pending, or whose
// position is outside [head, tail) (its putter died before committing), is
// free; a pending record whose putter is dead is made dead by the getter
// that waited for it, and dropped, with its count and unfinished. The ring
// neither grows nor shrinks while a slot is taken, so the bytes a putter
// copies stay where it copies them.
//
// Taking out: a get (not GetClaim, nor GetMany) of a message of at least
// 64 KB copies it out outside the lock. Under the lock it takes a free
// take-out slot (position = head, then pid) and commits the get as any get
// does (head moves past the record, count drops); it unlocks, copies the
// payload out, and under the lock again frees the slot. Ring space is free
// only below the lowest of head and the positions of the taken take-out
// slots, so no put overwrites a record being copied out. A slot whose
// position is not below head (its getter died before committing) is free;
// one whose getter is dead is freed by a putter that needs the room (the
// getter's message is lost, as with a getter killed during any get). The
// ring neither grows nor shrinks while a take-out slot is taken.
//
// Growing: the file is extended, every live byte at position p is copied
// from index p mod old to p mod new (always into [old, new), which holds no
// live data), and then capacity is stored. A grower killed before that store
// leaves the old ring intact; the extra file length is harmless.
//
// Shrinking, only when the ring is empty (head = tail): capacity is stored,
// then the file is truncated to it. Killed in between, the file is longer
// than the ring, which is harmless. Every process remaps to the capacity in
// the header whenever it takes the lock, larger or smaller.
//
// Waiting: a waiter, under the lock, reads the futex word and adds itself
// to the sleepers, unlocks and FUTEX_WAITs on the value it read. A waker,
// under the lock, bumps the word if sleepers != 0 and wakes after
// unlocking. A sleeper that dies leaves its count behind, which only costs
// wakers a needless FUTEX_WAKE. Close and Shutdown bump every word and wake
// every sleeper, without the lock; sleepers then re-check.
const (
	hdrSize = 4096

	magic   = 0x5545555147504f4d
	version = 3

	offMagic       = 0
	offVersion     = 8
	offFlags       = 12
	offCap         = 16
	offInitCap     = 24
	offMaxsize     = 32
	offLockState   = 40
	offLockPid     = 44
	offJournal     = 52
	offHead        = 56
	offTail        = 64
	offCount       = 72
	offUnfinished  = 80
	offJHead       = 96
	offJTail       = 104
	offJCount      = 112
	offJUnfinished = 120
	offNotEmpty    = 128
	offGetters     = 132
	offNotFull     = 136
	offPutters     = 140
	offJoin        = 144
	offJoiners     = 148

	flagShut = 1 << 0

	lenSize = 8 // the length word before each payload
)

// Ring sizes.
const (
	// DefaultCapacity is the data ring New starts with.
	DefaultCapacity = 1 << 20

	minCapacity = 64
	maxCapacity = 1 << 46

	// MaxMessage is the largest payload a queue accepts.
	MaxMessage = maxCapacity/2 - lenSize
)

var (
	errEmpty    = fmt.Errorf("queue: %w", errs.ErrEmpty)
	errFull     = fmt.Errorf("queue: %w", errs.ErrFull)
	errClosed   = fmt.Errorf("queue: %w", errs.ErrClosed)
	errShutDown = fmt.Errorf("queue: shut down: %w", errs.ErrClosed)
	errBusy     = errors.New("queue: ring busy with reservations")
	errPending  = errors.New("queue: next message pending")
)

// Queue is this process's handle on a shared queue. Its methods are safe
// for concurrent use by goroutines; other processes reach the same queue
// through Attach.
type Queue struct {
	// life is held shared by every operation and exclusively by Close, so
	// the mappings are never unmapped under an operation.
	life   sync.RWMutex
	closed atomic.Bool

	fd      int
	pid     uint32
	hdr     []byte         // the header page, mapped on its own so it never moves
	base    unsafe.Pointer // &hdr[0]
	mu      futex.Mutex
	maxsize uint64
	initCap uint64

	// Guarded by the queue lock: the mapping of [0, hdrSize+capacity) of
	// the memfd, replaced when another process grew the ring.
	mapping  []byte
	data     []byte // mapping[hdrSize:], capacity bytes
	capacity uint64

	waiters atomic.Int32 // goroutines of this handle registered as sleepers
	spin    atomic.Int32 // current spin budget, adapted to how spins go

	takeovers, redos, shrinks, grows atomic.Int64 // counters for tests
}

var raiseOnce sync.Once

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit, since
// every queue a process holds costs a descriptor (as core/shm does).
func raiseFileLimit() {
	raiseOnce.Do(func() {
		var r unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
			r.Cur = r.Max
			_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &r)
		}
	})
}

// New creates an empty queue holding at most maxsize messages; maxsize <= 0
// makes it unbounded. Its ring starts at DefaultCapacity bytes.
func New(maxsize int) (*Queue, error) {
	return newQueue(maxsize, DefaultCapacity)
}

// newQueue creates a queue whose ring starts at capacity bytes, a power of
// two of at least minCapacity.
func newQueue(maxsize, capacity int) (*Queue, error) {
	if maxsize < 0 {
		maxsize = 0
	}
	if capacity < minCapacity || capacity > maxCapacity || capacity&(capacity-1) != 0 {
		return nil, fmt.Errorf("queue: capacity %d: %w", capacity, errs.ErrValue)
	}
	raiseFileLimit()
	fd, err := unix.MemfdCreate("mpgo-queue", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("queue: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(hdrSize+capacity)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("queue: ftruncate to %d: %w", hdrSize+capacity, err)
	}
	hdr, err := unix.Mmap(fd, 0, hdrSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("queue: mmap header: %w", err)
	}
	// A fresh memfd is zero, so only the non-zero words need writing; the
	// magic goes last, although nobody can attach before New returns.
	base := unsafe.Pointer(&hdr[0])
	*(*uint32)(unsafe.Add(base, offVersion)) = version
	*(*uint64)(unsafe.Add(base, offCap)) = uint64(capacity)
	*(*uint64)(unsafe.Add(base, offInitCap)) = uint64(capacity)
	*(*uint64)(unsafe.Add(base, offMaxsize)) = uint64(maxsize)
	atomic.StoreUint64((*uint64)(unsafe.Add(base, offMagic)), magic)
	return open(fd, hdr), nil
}

// Attach opens the queue that ref names: ref.Pid is any live process that
// holds the queue and ref.FD its descriptor for it, as its Ref returns.
// ref.Size is ignored. The error wraps errs.ErrClosed if that process or
// descriptor is gone, errs.ErrValue if the file is not a queue.
func Attach(ref shm.Ref) (*Queue, error) {
	if ref.Pid <= 0 || ref.FD < 0 {
		return nil, fmt.Errorf("queue: attach %v: %w", ref, errs.ErrValue)
	}
	raiseFileLimit()
	path := fmt.Sprintf("/proc/%d/fd/%d", ref.Pid, ref.FD)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("queue: attach %v: holder gone: %w", ref, errs.ErrClosed)
		}
		return nil, fmt.Errorf("queue: attach %v: %w", ref, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("queue: attach %v: %w", ref, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < hdrSize+minCapacity {
		unix.Close(fd)
		return nil, fmt.Errorf("queue: attach %v: file of %d bytes: %w", ref, st.Size, errs.ErrValue)
	}
	hdr, err := unix.Mmap(fd, 0, hdrSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("queue: attach %v: mmap header: %w", ref, err)
	}
	base := unsafe.Pointer(&hdr[0])
	if atomic.LoadUint64((*uint64)(unsafe.Add(base, offMagic))) != magic ||
		atomic.LoadUint32((*uint32)(unsafe.Add(base, offVersion))) != version {
		unix.Munmap(hdr)
		unix.Close(fd)
		return nil, fmt.Errorf("queue: attach %v: not a queue: %w", ref, errs.ErrValue)
	}
	// The ring is mapped by the first operation, under the lock, like any
	// later remap.
	return open(fd, hdr), nil
}

// open makes the handle over fd and its mapped header.
func open(fd int, hdr []byte) *Queue {
	q := &Queue{fd: fd, pid: uint32(os.Getpid()), hdr: hdr, base: unsafe.Pointer(&hdr[0])}
	q.mu = futex.Mutex{State: q.w32(offLockState), Pid: q.w32(offLockPid)}
	q.maxsize = atomic.LoadUint64(q.w64(offMaxsize))
	q.initCap = atomic.LoadUint64(q.w64(offInitCap))
	q.spin.Store(spinStart)
	return q
}

func (q *Queue) w32(off uintptr) *uint32 { return (*uint32)(unsafe.Add(q.base, off)) }
func (q *Queue) w64(off uintptr) *uint64 { return (*uint64)(unsafe.Add(q.base, off)) }

// enter admits an operation unless q is closed; the caller must call
// q.life.RUnlock when it returns true.
func (q *Queue) enter() bool {
	q.life.RLock()
	if q.closed.Load() {
		q.life.RUnlock()
		return false
	}
	return true
}

// Ref returns the name of the queue as this process holds it: this
// process's pid and descriptor, and the current size of the memfd. It is
// valid for as long as this process keeps q open.
func (q *Queue) Ref() shm.Ref {
	if !q.enter() {
		return shm.Ref{Pid: os.Getpid(), FD: -1}
	}
	defer q.life.RUnlock()
	return shm.Ref{Pid: int(q.pid), FD: q.fd, Size: int64(hdrSize + atomic.LoadUint64(q.w64(offCap)))}
}

// FD returns this process's descriptor for the queue's memfd, or -1 after
// Close.
func (q *Queue) FD() int {
	if !q.enter() {
		return -1
	}
	defer q.life.RUnlock()
	return q.fd
}

// Len returns the number of messages in the queue, or 0 after Close.
func (q *Queue) Len() int {
	if !q.enter() {
		return 0
	}
	defer q.life.RUnlock()
	return int(atomic.LoadUint64(q.w64(offCount)))
}

// Cap returns the queue's maxsize; 0 means unbounded.
func (q *Queue) Cap() int { return int(q.maxsize) }

// Peek returns the length of the next message, and false if the queue is
// empty or q is closed. It does not consume anything.
func (q *Queue) Peek() (n int, ok bool) {
	if !q.enter() {
		return 0, false
	}
	defer q.life.RUnlock()
	if locked, err := q.lock(-1); !locked || err != nil {
		return 0, false
	}
	defer q.unlock()
	if atomic.LoadUint64(q.w64(offCount)) == 0 {
		return 0, false
	}
	n, err := q.lengthAt(atomic.LoadUint64(q.w64(offHead)), atomic.LoadUint64(q.w64(offTail)))
	return n, err == nil
}

// Shutdown marks the queue shut down for every process: later puts fail
// with errs.ErrClosed, gets return what is left and then errs.ErrClosed, and
// blocked callers wake up to find out. Join and TaskDone are unaffected.
func (q *Queue) Shutdown() error {
	if !q.enter() {
		return errClosed
	}
	defer q.life.RUnlock()
	if _, err := q.lock(-1); err != nil {
		return err
	}
	flags := q.w32(offFlags)
	atomic.StoreUint32(flags, atomic.LoadUint32(flags)|flagShut)
	q.unlock()
	q.wakeAll()
	return nil
}

// wakeAll bumps every futex word and wakes all their sleepers, in every
// process; each re-checks its condition.
func (q *Queue) wakeAll() {
	for _, off := range []uintptr{offNotEmpty, offNotFull, offJoin} {
		atomic.AddUint32(q.w32(off), 1)
		futex.Wake(q.w32(off), 1<<31-1)
	}
}

// Close unmaps the queue and closes the descriptor in this process only;
// the queue lives on in the others. Blocked calls on q return
// errs.ErrClosed, and Close waits for calls in progress to finish. Later
// calls do nothing.
func (q *Queue) Close() error {
	if !q.closed.CompareAndSwap(false, true) {
		return nil
	}
	// A waiter counts itself in waiters before it reads its futex word and
	// then checks closed, so either it sees closed or this bump moves the
	// word under it.
	if q.waiters.Load() > 0 {
		q.wakeAll()
	}
	q.life.Lock()
	defer q.life.Unlock()
	var err error
	if q.mapping != nil {
		err = unix.Munmap(q.mapping)
		q.mapping, q.data, q.capacity = nil, nil, 0
	}
	if e := unix.Munmap(q.hdr); err == nil {
		err = e
	}
	if e := unix.Close(q.fd); err == nil {
		err = e
	}
	q.hdr, q.base, q.fd = nil, nil, -1
	if err != nil {
		return fmt.Errorf("queue: close: %w", err)
	}
	return nil
}

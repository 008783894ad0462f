package shm

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/internal/futex"
)

// Arena header, at offset 0 of its segment. All fields are little-endian
// words, changed only under the lock, whose protocol is futex.Mutex's:
//
//	off  0  uint32  magic "MPGA" (0x4147504d)
//	off  4  uint32  version (1)
//	off  8  uint64  size: bytes of the arena, header included (multiple of 16)
//	off 16  uint32  lock state: 0 free, 1 held, 2 held with sleepers
//	off 20  uint32  lock holder pid; 0 iff free (with off 16, one 64-bit word)
//	off 24  uint64  offset of the first free block, 0 if none
//	off 32  uint64  bytes in allocated blocks, their headers and padding included
//	off 40  uint64  number of allocated blocks
//	off 48  16 bytes reserved, zero
//
// Blocks tile [64, size) and start and end on 16-byte boundaries. Free
// blocks form a singly linked list sorted by offset, and neighbours are
// always coalesced:
//
//	free block at s:   s+0  uint64  block size (>= 32)
//	                   s+8  uint64  offset of the next free block, 0 at the end
//
// An allocated block [s, s+size) hands out the offset p of its payload,
// aligned as asked; the 16 bytes before p describe the block:
//
//	allocated block:   p-16 uint64  block size
//	                   p-8  uint32  tag 0xa110c8ed (odd, so never a free-list offset)
//	                   p-4  uint32  p - s: header plus alignment padding
const (
	arenaMagic   = 0x4147504d
	arenaVersion = 1

	offMagic   = 0
	offVersion = 4
	offSize    = 8
	offLock    = 16
	offLockPid = 20
	offFree    = 24
	offUsed    = 32
	offLive    = 40
	arenaHdr   = 64

	blockHdr = 16 // bytes before each payload
	minBlock = 32 // a free block's two words, rounded to a header plus 16
	allocTag = 0xa110c8ed
)

// Arena is an allocator over one segment. Its state is in the segment, so
// every process that attaches it can allocate and free; its methods are
// safe for concurrent use by goroutines and processes.
type Arena struct {
	seg  *Segment
	mem  []byte
	size int
	lock futex.Mutex
}

// NewArena creates a segment of size bytes and formats it as an empty arena.
func NewArena(size int) (*Arena, error) {
	size &^= 15
	if size < arenaHdr+minBlock {
		return nil, fmt.Errorf("shm: arena of %d bytes: %w", size, errs.ErrValue)
	}
	seg, err := Create("mpgo-arena", size)
	if err != nil {
		return nil, err
	}
	a := newArena(seg, size)
	// A fresh memfd is zero, so only the non-zero fields need writing.
	*a.u64(arenaHdr) = uint64(size - arenaHdr)
	*a.u64(offFree) = arenaHdr
	*a.u64(offSize) = uint64(size)
	*a.u32(offVersion) = arenaVersion
	*a.u32(offMagic) = arenaMagic
	return a, nil
}

// AttachArena attaches the segment ref names and checks it holds an arena.
func AttachArena(ref Ref) (*Arena, error) {
	seg, err := Attach(ref)
	if err != nil {
		return nil, err
	}
	mem := seg.Bytes()
	bad := len(mem) < arenaHdr
	if !bad {
		a := newArena(seg, len(mem))
		size := *a.u64(offSize)
		if *a.u32(offMagic) == arenaMagic && *a.u32(offVersion) == arenaVersion &&
			size <= uint64(len(mem)) && size%16 == 0 && size >= arenaHdr+minBlock {
			a.size = int(size)
			return a, nil
		}
	}
	seg.Close()
	return nil, fmt.Errorf("shm: attach arena %v: not an arena: %w", ref, errs.ErrValue)
}

func newArena(seg *Segment, size int) *Arena {
	a := &Arena{seg: seg, mem: seg.Bytes(), size: size}
	a.lock = futex.Mutex{State: a.u32(offLock), Pid: a.u32(offLockPid)}
	return a
}

// Bytes returns the whole segment; Alloc's offsets index it.
func (a *Arena) Bytes() []byte { return a.mem }

// Segment returns the segment under a; closing it ends a.
func (a *Arena) Segment() *Segment { return a.seg }

func (a *Arena) u64(off int) *uint64 { return (*uint64)(unsafe.Pointer(&a.mem[off])) }
func (a *Arena) u32(off int) *uint32 { return (*uint32)(unsafe.Pointer(&a.mem[off])) }

// acquire takes the arena lock. If a process died holding it, the free list
// may be half updated; carrying on risks a leak or a corrupt arena, which
// beats every other process hanging forever.
func (a *Arena) acquire() {
	a.lock.Lock(uint32(os.Getpid()), 0, -1)
}

func (a *Arena) release() { a.lock.Unlock() }

// Alloc reserves n bytes aligned to align (a power of two; at least 8, and
// in practice 16) and returns their offset in Bytes. It fails with
// errs.ErrFull when no free block is large enough.
func (a *Arena) Alloc(n, align int) (off int, err error) {
	if align < 8 {
		align = 8
	}
	if n <= 0 || align&(align-1) != 0 || align > a.size {
		return 0, fmt.Errorf("shm: alloc %d bytes aligned %d: %w", n, align, errs.ErrValue)
	}
	if n > a.size {
		return 0, fmt.Errorf("shm: alloc %d bytes aligned %d: %w", n, align, errs.ErrFull)
	}
	a.acquire()
	defer a.release()
	prev := 0 // offset of the previous free block, 0 for the list head
	for s := int(*a.u64(offFree)); s != 0; prev, s = s, int(*a.u64(s + 8)) {
		bsize, next := int(*a.u64(s)), int(*a.u64(s + 8))
		p := alignUp(s+blockHdr, align)
		end := alignUp(p+n, 16)
		if end > s+bsize {
			continue
		}
		// Padding before the header large enough to be a block stays free,
		// and so does a large enough tail; smaller slivers join the block.
		start := s
		if lead := p - blockHdr - s; lead >= minBlock {
			*a.u64(s) = uint64(lead)
			start, prev = p-blockHdr, s
		} else {
			a.link(prev, next)
		}
		if tail := s + bsize - end; tail >= minBlock {
			*a.u64(end) = uint64(tail)
			*a.u64(end + 8) = uint64(next)
			a.link(prev, end)
		} else {
			end = s + bsize
		}
		*a.u64(p - 16) = uint64(end - start)
		*a.u32(p - 8) = allocTag
		*a.u32(p - 4) = uint32(p - start)
		*a.u64(offUsed) += uint64(end - start)
		*a.u64(offLive)++
		return p, nil
	}
	return 0, fmt.Errorf("shm: alloc %d bytes aligned %d: %w", n, align, errs.ErrFull)
}

// link makes next follow prev in the free list (prev 0: the list head).
func (a *Arena) link(prev, next int) {
	if prev == 0 {
		*a.u64(offFree) = uint64(next)
	} else {
		*a.u64(prev + 8) = uint64(next)
	}
}

// Free returns the block at off, an offset Alloc returned. It fails with
// errs.ErrValue for an offset that is not a live block, such as one freed
// already.
func (a *Arena) Free(off int) error {
	if off%16 != 0 || off < arenaHdr+blockHdr || off >= a.size {
		return badFree(off)
	}
	a.acquire()
	defer a.release()
	bsize, lead := int(*a.u64(off - 16)), int(*a.u32(off - 4))
	s := off - lead
	if *a.u32(off - 8) != allocTag || lead < blockHdr || lead%16 != 0 || s < arenaHdr ||
		bsize < minBlock || bsize%16 != 0 || bsize > a.size-s || off >= s+bsize {
		return badFree(off)
	}
	// Find the free neighbours; overlapping one means a double or wild free.
	prev, next := 0, int(*a.u64(offFree))
	for next != 0 && next < s {
		prev, next = next, int(*a.u64(next + 8))
	}
	if (prev != 0 && prev+int(*a.u64(prev)) > s) || (next != 0 && s+bsize > next) {
		return badFree(off)
	}
	*a.u64(off - 8) = 0 // untag first, so a second Free of off fails
	*a.u64(offUsed) -= uint64(bsize)
	*a.u64(offLive)--
	cur := s
	if prev != 0 && prev+int(*a.u64(prev)) == s {
		*a.u64(prev) += uint64(bsize)
		cur = prev
	} else {
		*a.u64(s) = uint64(bsize)
		*a.u64(s + 8) = uint64(next)
		a.link(prev, s)
	}
	if next != 0 && cur+int(*a.u64(cur)) == next {
		*a.u64(cur) += *a.u64(next)
		*a.u64(cur + 8) = *a.u64(next + 8)
	}
	return nil
}

func badFree(off int) error {
	return fmt.Errorf("shm: free %d: not an allocated block: %w", off, errs.ErrValue)
}

func alignUp(x, align int) int { return (x + align - 1) &^ (align - 1) }

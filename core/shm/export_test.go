package shm

import "fmt"

// ArenaHeaderSize is the bytes the arena header takes at offset 0.
const ArenaHeaderSize = arenaHdr

// ArenaStats is what CheckArena finds in an arena.
type ArenaStats struct {
	Size, Used, Free, Live, FreeBlocks int
}

// CheckArena walks a's free list under the arena lock and checks what every
// operation must preserve: free blocks are in bounds, 16-byte granular,
// sorted, disjoint and coalesced, and used plus free bytes tile the arena.
func CheckArena(a *Arena) (ArenaStats, error) {
	a.acquire()
	defer a.release()
	st := ArenaStats{Size: a.size, Used: int(*a.u64(offUsed)), Live: int(*a.u64(offLive))}
	end := 0
	for s := int(*a.u64(offFree)); s != 0; s = int(*a.u64(s + 8)) {
		if s < arenaHdr || s%16 != 0 || s+minBlock > a.size {
			return st, fmt.Errorf("free block at %d out of bounds", s)
		}
		size := int(*a.u64(s))
		if size < minBlock || size%16 != 0 || s+size > a.size {
			return st, fmt.Errorf("free block at %d has size %d", s, size)
		}
		if s <= end {
			return st, fmt.Errorf("free block at %d follows one ending at %d", s, end)
		}
		end = s + size
		st.Free += size
		st.FreeBlocks++
		if st.FreeBlocks > a.size/minBlock {
			return st, fmt.Errorf("free list has a cycle")
		}
	}
	if st.Used+st.Free != a.size-arenaHdr {
		return st, fmt.Errorf("used %d + free %d != %d", st.Used, st.Free, a.size-arenaHdr)
	}
	return st, nil
}

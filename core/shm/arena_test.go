package shm_test

import (
	"bufio"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/shm"
)

func newArena(t testing.TB, size int) *shm.Arena {
	t.Helper()
	a, err := shm.NewArena(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Segment().Close() })
	return a
}

func check(t testing.TB, a *shm.Arena) shm.ArenaStats {
	t.Helper()
	st, err := shm.CheckArena(a)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestArenaAllocFree(t *testing.T) {
	a := newArena(t, 4096)
	x, err := a.Alloc(10, 8)
	if err != nil {
		t.Fatal(err)
	}
	y, err := a.Alloc(100, 64)
	if err != nil {
		t.Fatal(err)
	}
	if x < shm.ArenaHeaderSize || x%8 != 0 || y%64 != 0 || y < x+10 {
		t.Fatalf("offsets %d, %d", x, y)
	}
	if st := check(t, a); st.Live != 2 {
		t.Fatalf("%+v, want 2 live blocks", st)
	}
	copy(a.Bytes()[x:x+10], "0123456789")
	if err := a.Free(y); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(y); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("double free = %v, want ErrValue", err)
	}
	for _, bad := range []int{0, 8, x + 16, 1 << 20, -16} {
		if err := a.Free(bad); !errors.Is(err, errs.ErrValue) {
			t.Errorf("Free(%d) = %v, want ErrValue", bad, err)
		}
	}
	if err := a.Free(x); err != nil {
		t.Fatal(err)
	}
	if st := check(t, a); st.Live != 0 || st.Used != 0 || st.FreeBlocks != 1 {
		t.Fatalf("after freeing everything: %+v", st)
	}
	for _, bad := range [][2]int{{0, 8}, {-1, 8}, {8, 24}, {8, 1 << 20}} {
		if _, err := a.Alloc(bad[0], bad[1]); !errors.Is(err, errs.ErrValue) {
			t.Errorf("Alloc(%d, %d) = %v, want ErrValue", bad[0], bad[1], err)
		}
	}
}

func TestArenaExhaustion(t *testing.T) {
	a := newArena(t, 64<<10)
	var offs []int
	for {
		off, err := a.Alloc(100, 8)
		if errors.Is(err, errs.ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, off)
	}
	st := check(t, a)
	if len(offs) < 400 || st.Live != len(offs) || st.Free >= 128 {
		t.Fatalf("%d blocks of 100 bytes in 64 KiB, %+v", len(offs), st)
	}
	for _, off := range offs {
		if err := a.Free(off); err != nil {
			t.Fatal(err)
		}
	}
	if st := check(t, a); st.Used != 0 || st.FreeBlocks != 1 {
		t.Fatalf("after freeing everything: %+v", st)
	}
	if _, err := a.Alloc(64<<10, 8); !errors.Is(err, errs.ErrFull) {
		t.Fatalf("Alloc(whole arena) = %v, want ErrFull", err)
	}
}

func TestArenaAttach(t *testing.T) {
	a := newArena(t, 8192)
	off, err := a.Alloc(32, 8)
	if err != nil {
		t.Fatal(err)
	}
	b, err := shm.AttachArena(a.Segment().Ref())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Segment().Close()
	if err := b.Free(off); err != nil {
		t.Fatalf("Free through the attached arena: %v", err)
	}
	if st := check(t, a); st.Live != 0 {
		t.Fatalf("%+v after a free by the other view", st)
	}
	seg, err := shm.Create("plain", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	if _, err := shm.AttachArena(seg.Ref()); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("AttachArena(plain segment) = %v, want ErrValue", err)
	}
}

func TestArenaHammer(t *testing.T) {
	a := newArena(t, 1<<20)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			if err := HammerArena(a, uint64(g), 5000); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if st := check(t, a); st.Live != 0 || st.FreeBlocks != 1 {
		t.Fatalf("after the hammer: %+v", st)
	}
}

func TestArenaHammerProcesses(t *testing.T) {
	a := newArena(t, 1<<20)
	ref := a.Segment().Ref().String()
	c1, out1 := startChild(t, "arena", ref)
	c2, out2 := startChild(t, "arena", ref)
	for _, out := range []*bufio.Reader{out1, out2} {
		if s := readLine(t, out); s != "ready" {
			t.Fatalf("child said %q", s)
		}
	}
	if err := HammerArena(a, 99, 5000); err != nil {
		t.Error(err)
	}
	for _, c := range []interface{ Wait() error }{c1, c2} {
		if err := c.Wait(); err != nil {
			t.Errorf("child: %v", err)
		}
	}
	if st := check(t, a); st.Live != 0 || st.FreeBlocks != 1 {
		t.Fatalf("after the hammer: %+v", st)
	}
}

// FuzzArena reads its input as a program of allocations and frees and
// checks after each step that live blocks are in bounds, aligned and
// disjoint, that frees succeed and double frees fail, and that the arena's
// accounting adds up.
func FuzzArena(f *testing.F) {
	f.Add([]byte{0, 10, 0, 200, 1, 0, 0, 7, 1, 1})
	f.Add([]byte{2, 255, 2, 255, 2, 255, 1, 0, 1, 0, 1, 0})
	f.Add([]byte{0, 1, 0, 2, 0, 3, 3, 0, 1, 2, 1, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		a := newArena(t, 8192)
		type block struct{ off, n int }
		var live []block
		for i := 0; i+1 < len(prog); i += 2 {
			op, arg := prog[i], int(prog[i+1])
			switch op % 4 {
			case 0, 2: // allocate
				n, align := 1+arg*(1+int(op)/4), []int{8, 16, 64, 8}[op/4%4]
				off, err := a.Alloc(n, align)
				if errors.Is(err, errs.ErrFull) {
					continue
				}
				if err != nil {
					t.Fatalf("Alloc(%d, %d): %v", n, align, err)
				}
				if off%align != 0 || off < shm.ArenaHeaderSize || off+n > len(a.Bytes()) {
					t.Fatalf("Alloc(%d, %d) = %d", n, align, off)
				}
				for _, b := range live {
					if off < b.off+b.n && b.off < off+n {
						t.Fatalf("[%d,%d) overlaps [%d,%d)", off, off+n, b.off, b.off+b.n)
					}
				}
				live = append(live, block{off, n})
			case 1: // free
				if len(live) == 0 {
					continue
				}
				j := arg % len(live)
				if err := a.Free(live[j].off); err != nil {
					t.Fatalf("Free(%d): %v", live[j].off, err)
				}
				if arg&1 == 1 {
					if err := a.Free(live[j].off); !errors.Is(err, errs.ErrValue) {
						t.Fatalf("double Free(%d) = %v", live[j].off, err)
					}
				}
				live = append(live[:j], live[j+1:]...)
			case 3: // a wild free must fail and change nothing
				if slices.ContainsFunc(live, func(b block) bool { return b.off == arg*16 }) {
					continue
				}
				if err := a.Free(arg * 16); err == nil {
					t.Fatalf("Free(%d) of no block succeeded", arg*16)
				}
			}
			if st := check(t, a); st.Live != len(live) {
				t.Fatalf("%d live blocks counted, %d tracked", st.Live, len(live))
			}
		}
		for _, b := range live {
			if err := a.Free(b.off); err != nil {
				t.Fatal(err)
			}
		}
		if st := check(t, a); st.Used != 0 || st.FreeBlocks != 1 {
			t.Fatalf("after freeing everything: %+v", st)
		}
	})
}

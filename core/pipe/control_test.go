package pipe_test

import (
	"syscall"
	"testing"
	"unsafe"

	"github.com/mpgo/mpgo/core/pipe"
	mpsync "github.com/mpgo/mpgo/core/sync"
)

func TestControlLayout(t *testing.T) {
	if pipe.CtlLevel < pipe.CtlArmed+8 || pipe.CtlAlive < pipe.CtlLevel+8 ||
		pipe.CtlLock < pipe.CtlAlive+2*pipe.CtlAliveSize ||
		pipe.CtlFull < pipe.CtlLock+mpsync.LockSize || pipe.CtlSize < pipe.CtlFull+8 {
		t.Fatal("control block fields overlap")
	}
}

// bellPipe returns a non-blocking doorbell pipe, closed when the test ends.
func bellPipe(t *testing.T) (r, w int) {
	t.Helper()
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(p[0]); syscall.Close(p[1]) })
	return p[0], p[1]
}

// rung drains the doorbell and returns how many bytes it held.
func rung(fd int) int {
	n, _ := syscall.Read(fd, make([]byte, 64))
	return max(n, 0)
}

func TestSendRingsTheDoorbell(t *testing.T) {
	words := make([]uint64, (pipe.CtlSize+7)/8)
	ctl := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), pipe.CtlSize)
	if _, err := mpsync.NewLock(ctl[pipe.CtlLock:]); err != nil {
		t.Fatal(err)
	}
	word := func(off, side int) *uint32 { return (*uint32)(unsafe.Pointer(&ctl[off+4*side])) }
	a, b, err := pipe.New()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	const side = 1 // b's: a sends to it
	r, w := bellPipe(t)
	bell, err := pipe.OpenBell(ctl, side, w)
	if err != nil {
		t.Fatal(err)
	}
	a.SetBell(bell)
	recv := func() {
		t.Helper()
		if _, err := b.Recv(nil, 0); err != nil {
			t.Fatal(err)
		}
	}

	// Nobody waits: no byte.
	if a.Send([]byte("x")); rung(r) != 0 {
		t.Fatal("rang with nobody waiting")
	}
	recv()
	// Armed: a byte per send; the other side's words do not count.
	*word(pipe.CtlArmed, 1-side) = 1
	if a.Send([]byte("x")); rung(r) != 0 {
		t.Fatal("rang for the other side's waiter")
	}
	*word(pipe.CtlArmed, side) = 2
	a.Send([]byte("x"))
	a.Send([]byte("x"))
	if n := rung(r); n != 2 {
		t.Fatalf("armed: %d bytes for 2 sends", n)
	}
	recv()
	recv()
	recv()
	// Level: one byte while the ring holds a message, whatever armed says.
	*word(pipe.CtlLevel, side) = 1
	a.Send([]byte("x"))
	a.Send([]byte("x"))
	if n := rung(r); n != 1 || *word(pipe.CtlFull, side) != 1 {
		t.Fatalf("level: %d bytes, full %d", n, *word(pipe.CtlFull, side))
	}
	if _, err := pipe.OpenBell(ctl[:pipe.CtlSize-1], side, w); err == nil {
		t.Fatal("OpenBell took a short control block")
	}
}

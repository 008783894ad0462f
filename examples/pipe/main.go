// Command pipe sends raw byte messages to one end of an mpgo Pipe() that a
// Python process created, ringing that end's doorbell so that a Python
// poll(), connection.wait() or select on its fileno() wakes. It shows what a
// Go sender needs: the ring and control block RingConnection.engine_refs()
// names, and the doorbell's write end (doorbell_fd(), inherited).
//
// usage:
//
//	pipe -send PID:FD:SIZE -ctl PID:FD:SIZE -off N -side S -bell FD -n N [-await]
//
// sends "go:0" .. "go:N-1" on the ring named by -send to side S; with
// -await it first waits, before each message, until somebody waits on that
// side's doorbell (a Python poll() or wait()).
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/pipe"
	"github.com/mpgo/mpgo/core/shm"
)

func main() {
	send := flag.String("send", "", "reference of the ring to send on")
	ctl := flag.String("ctl", "", "reference of the arena holding the control block")
	off := flag.Int("off", 0, "offset of the control block in that arena")
	side := flag.Int("side", 0, "the receiving side")
	bell := flag.Int("bell", -1, "write end of the receiver's doorbell")
	n := flag.Int("n", 1, "messages")
	await := flag.Bool("await", false, "wait for a waiter before each message")
	flag.Parse()
	if err := run(*send, *ctl, *off, *side, *bell, *n, *await); err != nil {
		fmt.Fprintln(os.Stderr, "pipe:", err)
		os.Exit(1)
	}
}

func run(send, ctl string, off, side, bell, n int, await bool) error {
	sr, err := shm.ParseRef(send)
	if err != nil {
		return err
	}
	cr, err := shm.ParseRef(ctl)
	if err != nil {
		return err
	}
	end, err := pipe.Attach(shm.Ref{}, sr)
	if err != nil {
		return err
	}
	defer end.Close()
	seg, err := shm.Attach(cr)
	if err != nil {
		return err
	}
	defer seg.Close()
	if off < 0 || off+pipe.CtlSize > len(seg.Bytes()) {
		return fmt.Errorf("control block at %d outside the arena", off)
	}
	block := seg.Bytes()[off : off+pipe.CtlSize]
	b, err := pipe.OpenBell(block, side, bell)
	if err != nil {
		return err
	}
	end.SetBell(b)
	armed := (*uint32)(unsafe.Pointer(&block[pipe.CtlArmed+4*side]))
	for i := range n {
		if await {
			for deadline := time.Now().Add(time.Minute); atomic.LoadUint32(armed) == 0; {
				if time.Now().After(deadline) {
					return fmt.Errorf("nobody waits on side %d", side)
				}
				time.Sleep(time.Millisecond)
			}
		}
		if err := end.Send(strconv.AppendInt([]byte("go:"), int64(i), 10)); err != nil {
			return err
		}
	}
	fmt.Println("sent", n)
	return nil
}

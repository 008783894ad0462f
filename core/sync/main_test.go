package sync_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mpgo/mpgo/core/shm"
	mpsync "github.com/mpgo/mpgo/core/sync"
)

// Offsets of the primitives in the segment the cross-process tests share.
const (
	offLock    = 0
	offRLock   = 64
	offSem     = 128
	offCounter = 1024
	segSize    = 4096
)

// roleEnv names the part a re-run test binary plays; refEnv passes it the
// shared segment.
const (
	roleEnv = "MPGO_SYNC_TEST_ROLE"
	refEnv  = "MPGO_SYNC_TEST_REF"
)

// TestMain lets the test binary impersonate the other processes of a
// cross-process test.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if err := child(role, os.Getenv(refEnv)); err != nil {
			fmt.Fprintln(os.Stderr, role+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child plays role on the segment ref names.
func child(role, ref string) error {
	r, err := shm.ParseRef(ref)
	if err != nil {
		return err
	}
	seg, err := shm.Attach(r)
	if err != nil {
		return err
	}
	mem := seg.Bytes()
	me := mpsync.Owner{Pid: uint32(os.Getpid()), Tid: 1}
	switch role {
	case "lock-hammer":
		l, _ := mpsync.OpenLock(mem[offLock:])
		fmt.Println("ready")
		HammerLock(l, me, counter(mem), 10000)
	case "rlock-hammer":
		l, _ := mpsync.OpenRLock(mem[offRLock:])
		fmt.Println("ready")
		HammerLock(l, me, counter(mem), 10000)
	case "lock-kill", "lock-exit", "rlock-kill", "rlock-exit":
		var l mpsync.Locker
		if strings.HasPrefix(role, "rlock") {
			l, _ = mpsync.OpenRLock(mem[offRLock:])
		} else {
			l, _ = mpsync.OpenLock(mem[offLock:])
		}
		if ok, err := l.Acquire(me, 10*time.Second); !ok || err != nil {
			return fmt.Errorf("acquire: %v, %v", ok, err)
		}
		fmt.Println("held")
		if strings.HasSuffix(role, "kill") {
			time.Sleep(time.Hour)
		}
	case "sem-release":
		s, _ := mpsync.OpenSemaphore(mem[offSem:])
		for range 1000 {
			if err := s.Release(1); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown role")
	}
	return nil
}

// counter is the plain word the hammers guard, in the shared segment.
func counter(mem []byte) *uint64 { return (*uint64)(unsafe.Pointer(&mem[offCounter])) }

// HammerLock increments *n loops times under l; an RLock is taken twice
// each time. Lost increments mean the lock failed to exclude.
func HammerLock(l mpsync.Locker, o mpsync.Owner, n *uint64, loops int) {
	_, recursive := l.(*mpsync.RLock)
	for range loops {
		l.Acquire(o, -1)
		if recursive {
			l.Acquire(o, 0)
		}
		*n++
		if recursive {
			l.Release(o)
		}
		l.Release(o)
	}
}

// newSegment returns a shared segment for the test, closed when it ends.
func newSegment(t *testing.T) *shm.Segment {
	t.Helper()
	seg, err := shm.Create(t.Name(), segSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Close() })
	return seg
}

// startChild re-runs the test binary as role on seg and returns it with a
// reader of its stdout. The child is killed and reaped when the test ends,
// and dies with this process in any case.
func startChild(t *testing.T, role string, seg *shm.Segment) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	// Under -race a process sleeps a second at exit, unless told not to.
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0", roleEnv+"="+role, refEnv+"="+seg.Ref().String())
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

// expectLine reads one line from a child and checks it is want.
func expectLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	s, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(s) != want {
		t.Fatalf("child said %q (%v), want %q", s, err, want)
	}
}

// owner returns an Owner of this process with thread id tid.
func owner(tid int) mpsync.Owner {
	return mpsync.Owner{Pid: uint32(os.Getpid()), Tid: uint32(tid)}
}

// within fails the test if f does not return within a generous bound.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s hangs", what)
	}
}

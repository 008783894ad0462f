package process_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/process"
)

// The roles the test binary plays when re-executed by process.Reexec.
const (
	roleExit       = "exit"             // exits with the code in args[0]
	roleSleep      = "sleep"            // sleeps until killed
	roleEchoFD3    = "echo-fd3"         // writes its args to fd 3
	roleGrandchild = "spawn-grandchild" // see spawnGrandchild
	roleZygote     = "zygote"           // see serveZygote
	roleEchoEnv    = "echo-env"         // writes $MPGO_TEST_ECHO to fd 3, exits with $MPGO_TEST_EXIT
)

func TestMain(m *testing.M) {
	switch role := process.Role(); role {
	case "":
		os.Exit(m.Run())
	case roleExit:
		n, _ := strconv.Atoi(os.Args[1])
		os.Exit(n)
	case roleSleep:
		time.Sleep(time.Minute) // bounded, in case a test leaks it
		os.Exit(0)
	case roleEchoFD3:
		f := os.NewFile(3, "fd3")
		if _, err := io.WriteString(f, strings.Join(os.Args[1:], " ")); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	case roleGrandchild:
		os.Exit(spawnGrandchild())
	case roleZygote:
		os.Exit(serveZygote())
	case roleEchoEnv:
		f := os.NewFile(3, "fd3")
		if _, err := io.WriteString(f, os.Getenv("MPGO_TEST_ECHO")); err != nil {
			os.Exit(1)
		}
		n, _ := strconv.Atoi(os.Getenv("MPGO_TEST_EXIT"))
		os.Exit(n)
	default:
		fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
		os.Exit(2)
	}
}

// spawnGrandchild starts a sleeping child with DeathSignal=SIGKILL from a
// goroutine locked to a thread that then exits, as a foreign C thread would.
// Once that thread is gone it reports the grandchild's pid on fd 3, then
// sleeps until killed.
func spawnGrandchild() int {
	// Keep the spawning goroutine off the main thread, which the runtime
	// wedges instead of terminating when a locked goroutine exits on it.
	runtime.LockOSThread()
	type result struct {
		p   *process.Process
		tid int
		err error
	}
	res := make(chan result)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		p, err := process.Reexec(roleSleep, nil, process.Attr{DeathSignal: syscall.SIGKILL})
		res <- result{p, unix.Gettid(), err}
	}()
	r := <-res
	if r.err == nil && r.tid == os.Getpid() {
		r.err = errors.New("spawned from the main thread, which never exits")
	}
	for i := 0; r.err == nil; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", r.tid)); os.IsNotExist(err) {
			break
		}
		if i == 1000 {
			r.err = fmt.Errorf("thread %d did not exit", r.tid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.err != nil {
		fmt.Fprintln(os.Stderr, r.err)
		return 1
	}
	f := os.NewFile(3, "fd3")
	fmt.Fprintf(f, "%d\n", r.p.Pid)
	f.Close()
	time.Sleep(time.Minute)
	return 0
}

// start re-executes the test binary in role and kills and releases the child
// when the test ends.
func start(t *testing.T, role string, args []string, a process.Attr) *process.Process {
	t.Helper()
	p, err := process.Reexec(role, args, a)
	if err != nil {
		t.Fatalf("Reexec(%q): %v", role, err)
	}
	t.Cleanup(func() { kill(t, p) })
	return p
}

func kill(t *testing.T, p *process.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("Signal(SIGKILL): %v", err)
	}
	if _, _, err := p.Wait(-1); err != nil {
		t.Errorf("Wait: %v", err)
	}
	if err := p.Release(); err != nil {
		t.Errorf("Release: %v", err)
	}
}

func wait(t *testing.T, p *process.Process) int {
	t.Helper()
	status, done, err := p.Wait(-1)
	if err != nil || !done {
		t.Fatalf("Wait(-1) = %d, %v, %v", status, done, err)
	}
	return status
}

// exited reports whether the process behind pidfd exits within timeout.
func exited(t *testing.T, pidfd int, timeout time.Duration) bool {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll: %v", err)
		}
		return n > 0
	}
}

func TestExitCodes(t *testing.T) {
	for _, code := range []int{0, 3, 255} {
		p := start(t, roleExit, []string{strconv.Itoa(code)}, process.Attr{})
		if got := wait(t, p); got != code {
			t.Errorf("exit(%d): status %d", code, got)
		}
		if got := wait(t, p); got != code {
			t.Errorf("exit(%d): second Wait gave %d", code, got)
		}
	}
}

func TestKilledBySignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		p := start(t, roleSleep, nil, process.Attr{})
		if err := p.Signal(sig); err != nil {
			t.Fatalf("Signal(%v): %v", sig, err)
		}
		if got := wait(t, p); got != -int(sig) {
			t.Errorf("killed by %v: status %d, want %d", sig, got, -int(sig))
		}
	}
}

func TestWaitTimeout(t *testing.T) {
	p := start(t, roleSleep, nil, process.Attr{DeathSignal: syscall.SIGKILL})
	if _, done, err := p.Poll(); done || err != nil {
		t.Fatalf("Poll on a running child = %v, %v", done, err)
	}
	const timeout = 50 * time.Millisecond
	t0 := time.Now()
	if _, done, err := p.Wait(timeout); done || err != nil {
		t.Fatalf("Wait(%v) on a running child = %v, %v", timeout, done, err)
	}
	if d := time.Since(t0); d < timeout {
		t.Errorf("Wait(%v) returned after %v", timeout, d)
	}
}

func TestConcurrentWait(t *testing.T) {
	p := start(t, roleSleep, nil, process.Attr{})
	var wg sync.WaitGroup
	statuses := make([]int, 32)
	for i := range statuses {
		wg.Go(func() {
			timeout := time.Duration(-1) // half wait forever, half in slices
			if i%2 == 1 {
				timeout = time.Millisecond
			}
			for {
				status, done, err := p.Wait(timeout)
				if err != nil {
					t.Errorf("Wait: %v", err)
					return
				}
				if done {
					statuses[i] = status
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond) // let the waiters block
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, s := range statuses {
		if s != -int(syscall.SIGKILL) {
			t.Errorf("waiter %d: status %d", i, s)
		}
	}
}

func TestFiles(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := start(t, roleEchoFD3, []string{"hello", "fd3"}, process.Attr{Files: []int{0, 1, 2, int(w.Fd())}})
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "hello fd3" {
		t.Errorf("read %q from the child's fd 3", out)
	}
	if got := wait(t, p); got != 0 {
		t.Errorf("status %d", got)
	}
}

func TestStartPathEnvDir(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	p, err := process.Start(process.Attr{
		Argv:  []string{"sh", "-c", `echo "$FOO"; pwd; exit 7`},
		Env:   []string{"FOO=bar", "PATH=" + os.Getenv("PATH")},
		Dir:   dir,
		Files: []int{0, int(w.Fd()), 2},
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kill(t, p) })
	out, _ := io.ReadAll(r)
	if want := "bar\n" + dir + "\n"; string(out) != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if got := wait(t, p); got != 7 {
		t.Errorf("status %d, want 7", got)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := process.Start(process.Attr{}); !errors.Is(err, errs.ErrValue) {
		t.Errorf("empty Argv: %v", err)
	}
	for _, name := range []string{"/nonexistent/mpgo-child", "mpgo-no-such-program"} {
		_, err := process.Start(process.Attr{Argv: []string{name}})
		if code, errno := errs.CodeOf(err); code != errs.CodeOS || errno != int(syscall.ENOENT) {
			t.Errorf("%s: %v (code %d, errno %d)", name, err, code, errno)
		}
	}
	if _, err := process.Reexec("", nil, process.Attr{}); !errors.Is(err, errs.ErrValue) {
		t.Errorf("empty role: %v", err)
	}
}

func TestSetsid(t *testing.T) {
	p := start(t, roleSleep, nil, process.Attr{Setsid: true})
	if sid, err := unix.Getsid(p.Pid); err != nil || sid != p.Pid {
		t.Errorf("Getsid(%d) = %d, %v", p.Pid, sid, err)
	}
}

func TestSignalAfterExit(t *testing.T) {
	p := start(t, roleExit, []string{"0"}, process.Attr{})
	if !exited(t, p.Pidfd(), 10*time.Second) {
		t.Fatal("child did not exit")
	}
	// Exited but not reaped: a zombie takes the signal without effect.
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("Signal to a zombie: %v", err)
	}
	if got := wait(t, p); got != 0 {
		t.Errorf("status %d after signalling the zombie", got)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("Signal after reap: %v", err)
	}
}

func TestRelease(t *testing.T) {
	// An exited child is reaped by Release, and its status outlives the pidfd.
	p := start(t, roleExit, []string{"5"}, process.Attr{})
	if !exited(t, p.Pidfd(), 10*time.Second) {
		t.Fatal("child did not exit")
	}
	for range 2 {
		if err := p.Release(); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if fd := p.Pidfd(); fd != -1 {
		t.Errorf("Pidfd after Release = %d", fd)
	}
	if status, done, err := p.Wait(0); status != 5 || !done || err != nil {
		t.Errorf("Wait after Release = %d, %v, %v", status, done, err)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("Signal after reap and Release: %v", err)
	}

	// A running child cannot be waited for or signalled once released.
	q, err := process.Reexec(roleSleep, nil, process.Attr{DeathSignal: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	pid := q.Pid
	for range 2 {
		if err := q.Release(); err != nil {
			t.Fatalf("Release: %v", err)
		}
	}
	if _, _, err := q.Wait(-1); !errors.Is(err, errs.ErrClosed) {
		t.Errorf("Wait after Release: %v", err)
	}
	if err := q.Signal(syscall.SIGKILL); !errors.Is(err, errs.ErrClosed) {
		t.Errorf("Signal after Release: %v", err)
	}
	// Still our unreaped child, so its pid cannot have been reused.
	syscall.Kill(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Errorf("wait4: %v", err)
	}
}

func TestDeathSignal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := start(t, roleGrandchild, nil, process.Attr{Files: []int{0, 1, 2, int(w.Fd())}})
	w.Close()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the grandchild's pid: %v", err)
	}
	gpid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	// The grandchild is alive (it sleeps), so its pid is not yet reusable.
	gfd, err := unix.PidfdOpen(gpid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", gpid, err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(gfd, syscall.SIGKILL, nil, 0)
		unix.Close(gfd)
	})

	if exited(t, gfd, 300*time.Millisecond) {
		t.Fatal("grandchild died when the thread that started it exited")
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, p); got != -int(syscall.SIGKILL) {
		t.Errorf("intermediate: status %d", got)
	}
	if !exited(t, gfd, 10*time.Second) {
		t.Error("grandchild outlived its SIGKILLed parent")
	}
}

func TestReleaseDuringWait(t *testing.T) {
	p, err := process.Reexec(roleSleep, nil, process.Attr{DeathSignal: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		done   bool
		err    error
	}
	res := make(chan result)
	go func() {
		status, done, err := p.Wait(-1)
		res <- result{status, done, err}
	}()
	time.Sleep(20 * time.Millisecond) // let the waiter block in poll
	// Release does not wait for the waiter, which keeps the pidfd open.
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	if fd := p.Pidfd(); fd != -1 {
		t.Errorf("Pidfd after Release = %d", fd)
	}
	syscall.Kill(p.Pid, syscall.SIGKILL) // still unreaped, so still our child
	if r := <-res; r.status != -int(syscall.SIGKILL) || !r.done || r.err != nil {
		t.Errorf("blocked Wait = %+v", r)
	}
	if status, done, err := p.Wait(0); status != -int(syscall.SIGKILL) || !done || err != nil {
		t.Errorf("Wait after the reap = %d, %v, %v", status, done, err)
	}
}

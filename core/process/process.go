// Package process starts child processes and waits for them through pidfds.
//
// A Process holds a pidfd obtained atomically at clone time, so it always
// names the child it started even after the pid is reused. The pidfd is
// pollable (readable once the child has exited), which is what Python's
// Process.sentinel needs, and reaping goes through waitid(P_PIDFD), never
// through a pid.
//
// Children are started with clone+exec (syscall.ForkExec), never with a bare
// fork, so this package is safe to use from a process running the Go
// runtime, including from foreign threads of a c-shared library.
//
// Exit statuses follow multiprocessing's exitcode convention: exit(n) gives
// n, death by signal s gives -s.
//
// The package is Linux only and needs kernel 5.4 or later (CLONE_PIDFD,
// pidfd_send_signal, waitid(P_PIDFD)).
package process

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
)

// Attr describes a child to start.
type Attr struct {
	// Argv is the argument vector. Argv[0] is the program: a path, or a
	// name without a slash that is looked up in PATH.
	Argv []string
	// Env is the environment. nil inherits os.Environ().
	Env []string
	// Dir is the working directory. "" inherits the parent's.
	Dir string
	// Files are the fds the child gets as 0, 1, 2, 3, ...; a negative
	// entry leaves that slot closed. nil means {0, 1, 2}.
	Files []int
	// DeathSignal, if non-zero, is sent to the child when this process
	// exits (PR_SET_PDEATHSIG), even when it is SIGKILLed.
	DeathSignal syscall.Signal
	// Setsid starts the child in a new session.
	Setsid bool
}

// Process is a started child. Its methods are safe for concurrent use.
type Process struct {
	// Pid is the child's process id. Prefer the methods, which go through
	// the pidfd and so cannot hit a reused pid.
	Pid int

	mu       sync.Mutex
	fd       int  // the pidfd; -1 once closed
	refs     int  // Waits polling fd outside mu; the last one closes fd after Release
	released bool // Release was called: fd is no longer handed out
	reaped   bool
	status   int // valid once reaped
}

// Start starts the child described by a. The returned Process must be
// released with Release once the caller is done with it.
func Start(a Attr) (*Process, error) {
	if len(a.Argv) == 0 || a.Argv[0] == "" {
		return nil, fmt.Errorf("process: start: empty Argv: %w", errs.ErrValue)
	}
	path := a.Argv[0]
	if !strings.Contains(path, "/") {
		lp, err := exec.LookPath(path)
		if err != nil {
			// Report it as Python's spawn would: FileNotFoundError.
			return nil, fmt.Errorf("process: start %q: not found in PATH: %w", path, syscall.ENOENT)
		}
		path = lp
	}
	env := a.Env
	if env == nil {
		env = os.Environ()
	}
	files := []uintptr{0, 1, 2}
	if a.Files != nil {
		files = make([]uintptr, len(a.Files))
		for i, fd := range a.Files {
			files[i] = uintptr(fd) // -1 becomes ^0, which ForkExec treats as "close"
		}
	}
	pidfd := -1
	attr := &syscall.ProcAttr{
		Dir:   a.Dir,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			PidFD:     &pidfd,
			Pdeathsig: a.DeathSignal,
			Setsid:    a.Setsid,
		},
	}
	var pid int
	var err error
	if a.DeathSignal != 0 {
		pid, err = forkExecOnSpawner(path, a.Argv, attr)
	} else {
		pid, err = syscall.ForkExec(path, a.Argv, attr)
	}
	if err != nil {
		return nil, fmt.Errorf("process: start %q: %w", path, err)
	}
	if pidfd < 0 {
		// The kernel predates CLONE_PIDFD: without a pidfd we cannot wait
		// safely, so do not leave the child running.
		syscall.Kill(pid, syscall.SIGKILL)
		var ws syscall.WaitStatus
		syscall.Wait4(pid, &ws, 0, nil)
		return nil, fmt.Errorf("process: start %q: kernel gave no pidfd: %w", path, errs.ErrNotSupported)
	}
	return &Process{Pid: pid, fd: pidfd}, nil
}

// Pidfd returns the child's pidfd (O_CLOEXEC). It becomes readable once the
// child has exited, and stays valid until Release; after Release it is -1.
func (p *Process) Pidfd() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return -1
	}
	return p.fd
}

// StillRunning is the status the bindings report for a child that has not
// exited when a timed Wait returns: it lies outside the range of exit codes
// and negated signal numbers.
const StillRunning = 1 << 40

// Wait waits up to timeout for the child to exit and reaps it; a negative
// timeout waits forever. It returns done=false and a nil error when the
// timeout elapsed first. Once the child is reaped, every call returns the
// same status, even after Release. Before that, Wait after Release returns
// an error wrapping errs.ErrClosed.
func (p *Process) Wait(timeout time.Duration) (status int, done bool, err error) {
	p.mu.Lock()
	if p.reaped {
		defer p.mu.Unlock()
		return p.status, true, nil
	}
	if p.released {
		p.mu.Unlock()
		return 0, false, fmt.Errorf("process: wait %d: %w", p.Pid, errs.ErrClosed)
	}
	fd := p.fd
	p.refs++
	p.mu.Unlock()
	defer p.unref()

	start := time.Now()
	for {
		// Reap first: it is one non-blocking waitid, it makes Poll cost
		// no poll(2) at all, and it absorbs EINTR and spurious wakeups.
		if status, done, err := p.reap(fd); done || err != nil {
			return status, done, err
		}
		ms := -1
		if timeout >= 0 {
			left := timeout - time.Since(start)
			if left <= 0 {
				return 0, false, nil
			}
			// Round up so a sub-millisecond rest does not spin on poll(0).
			ms = int(min(left.Milliseconds()+1, math.MaxInt32))
		}
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return 0, false, fmt.Errorf("process: wait %d: poll: %w", p.Pid, err)
		}
	}
}

// Poll reaps the child if it has exited, without blocking. It is Wait(0).
func (p *Process) Poll() (status int, done bool, err error) {
	return p.Wait(0)
}

// Signal sends sig to the child through its pidfd. Signalling a child that
// has already exited is not an error, as multiprocessing's terminate()
// ignores a dead process. Signal after Release on a child that was never
// reaped returns an error wrapping errs.ErrClosed.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	if p.released {
		return fmt.Errorf("process: signal %d: %w", p.Pid, errs.ErrClosed)
	}
	// A zombie accepts the signal; ESRCH means reaped behind our back.
	err := unix.PidfdSendSignal(p.fd, sig, nil, 0)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("process: signal %d: %w", p.Pid, err)
	}
	return nil
}

// Release closes the pidfd. It first reaps the child if it has exited, so
// releasing never leaves a zombie behind; a child still running is not
// waited for. Release is idempotent. A Wait blocked in another goroutine
// keeps the pidfd open until it returns.
func (p *Process) Release() error {
	p.Poll() // best effort: any error is the caller's to see from Wait
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.released {
		return nil
	}
	p.released = true
	if p.refs > 0 {
		return nil
	}
	return p.closeLocked()
}

// unref drops a reference taken by Wait, closing the pidfd if Release ran
// while Wait was polling it: closing earlier could let poll watch a reused fd.
func (p *Process) unref() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refs--
	if p.released && p.refs == 0 {
		p.closeLocked()
	}
}

func (p *Process) closeLocked() error {
	if p.fd < 0 {
		return nil
	}
	fd := p.fd
	p.fd = -1
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("process: release %d: %w", p.Pid, err)
	}
	return nil
}

// reap collects the child's status with a non-blocking waitid(P_PIDFD).
// The mutex makes concurrent Waits reap once and share the cached status.
func (p *Process) reap(fd int) (status int, done bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return p.status, true, nil
	}
	for {
		var info siginfo
		_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_PIDFD, uintptr(fd),
			uintptr(unsafe.Pointer(&info)), unix.WEXITED|unix.WNOHANG, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, false, fmt.Errorf("process: wait %d: waitid: %w", p.Pid, e)
		}
		if info.pid == 0 { // WNOHANG and still running
			return 0, false, nil
		}
		switch info.sicode() {
		case cldExited:
			p.status = int(info.status)
		case cldKilled, cldDumped:
			p.status = -int(info.status)
		default:
			return 0, false, fmt.Errorf("process: wait %d: unexpected si_code %d: %w", p.Pid, info.sicode(), errs.ErrInternal)
		}
		p.reaped = true
		return p.status, true, nil
	}
}

const is64bit = ^uint(0) >> 63 // 1 on 64-bit hosts, 0 on 32-bit ones

// siginfo is the SIGCHLD view of the kernel's siginfo_t, as waitid fills it.
// Layout: int32 si_signo, int32 si_errno, int32 si_code (si_errno and
// si_code swap on MIPS), 4 bytes of padding on 64-bit hosts (the union is
// pointer-aligned), then int32 si_pid, uint32 si_uid, int32 si_status;
// 128 bytes in all.
type siginfo struct {
	signo, errno, code int32
	_                  [is64bit]int32
	pid                int32
	uid                uint32
	status             int32
	_                  [128 - (6+is64bit)*4]byte
}

func (s *siginfo) sicode() int32 {
	if strings.HasPrefix(runtime.GOARCH, "mips") {
		return s.errno
	}
	return s.code
}

// Values of si_code for SIGCHLD (x/sys/unix does not export them).
const (
	cldExited = 1 // si_status is the exit code
	cldKilled = 2 // si_status is the signal
	cldDumped = 3 // killed, and dumped core
)

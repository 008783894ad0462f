package process

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
)

// A zygote is a single-threaded process that never runs Go and forks
// children on request: a Python process that loaded the Go runtime must
// never fork itself (golang/go#15538), yet a fork costs a fraction of a
// fresh interpreter. mpgo's zygote is Python (python/mpgo/zygote.py); this
// file defines its wire protocol, which the Go client below and the Python
// one both speak, and which tools/gen writes into python/mpgo/_consts.py.
//
// The zygote forks with clone(CLONE_PARENT), so each child is a child of
// the zygote's own parent, the process that asked: that process reaps it
// with waitid(P_PIDFD), signals it, and sees its exit status, exactly as
// for a child it started itself, and os.getppid() in the child is that
// process. The zygote keeps no table of children.
//
// A request is one SOCK_SEQPACKET message on the zygote's socket (so
// concurrent requests from several threads, or from Go and Python, never
// interleave), with its fds as SCM_RIGHTS:
//
//	off  size  field
//	  0     4  magic ZygoteMagic (little-endian), which names the version
//	  4     4  flags: ZygoteDaemon = the child gets PR_SET_PDEATHSIG(SIGKILL);
//	           ZygoteImport = fork nothing, import the modules the block names;
//	           with ZygoteWhenIdle, when no request has come for a while
//	           (an import holds up the requests that come meanwhile)
//	  8     4  number of child fds n (fds[1:], which become the child's 0..n-1)
//	 12     4  length of the block that follows
//	 16     …  the child's environment: "KEY=VALUE" strings, each ended by NUL
//	           (ZygoteImport: module names, each ended by NUL)
//
// The fds are: [0] the write end of a reply pipe, [1:] the child's fds by
// number (0-2 its stdio, 3 the pipe its Process data arrives on, then any
// more the parent hands down). The zygote writes one little-endian int64
// into the reply pipe, the child's pid, or -errno if it could not fork,
// and closes it (ZygoteImport: 0, or -1 if an import left the zygote unable
// to fork safely, in which case it exits). The child writes its pid there
// too, first thing, so that a zygote killed after it forked still leaves
// the pid to its client: read the first int64 only (both writes are
// atomic, PIPE_BUF). A reply pipe that reaches end-of-file empty means the
// zygote died before it forked.
//
// The child reads the data of a spawn child (python/mpgo/spawn.py) on fd 3
// and runs it. A zygote whose socket reaches end-of-file exits; it dies with
// its parent (PR_SET_PDEATHSIG), so it never outlives the process it serves.
const (
	ZygoteMagic      = 0x315a504d // "MPZ1"
	ZygoteHeaderSize = 16
	ZygoteDaemon     = 1 << 0
	ZygoteImport     = 1 << 1
	ZygoteWhenIdle   = 1 << 2
	// ZygoteMaxFDs is the most child fds one request may carry.
	ZygoteMaxFDs = 250
	// ZygoteMaxMessage is the largest request (header and environment).
	ZygoteMaxMessage = 1 << 17
	// ZygoteReplySize is the size of the reply: one int64.
	ZygoteReplySize = 8
)

// Zygote is a client of a zygote process, over the zygote's socket. Its
// methods are safe for concurrent use.
type Zygote struct {
	fd int
}

// NewZygote returns a client that sends requests on fd, a connected
// SOCK_SEQPACKET socket to a zygote. The client owns fd from then on.
func NewZygote(fd int) *Zygote {
	return &Zygote{fd: fd}
}

// Close closes the client's socket. A zygote whose every client socket is
// closed exits.
func (z *Zygote) Close() error {
	return unix.Close(z.fd)
}

// Start asks the zygote to fork a child with a.Files as its fds and a.Env
// as its environment (nil: this process's); a.DeathSignal may be 0 or
// SIGKILL. a.Argv, a.Dir and a.Setsid are not supported: the child runs the
// zygote's own program. The child is this process's child. An error
// wrapping errs.ErrClosed means the zygote is gone; the caller may start
// another or fall back to Start.
func (z *Zygote) Start(a Attr) (*Process, error) {
	if a.Dir != "" || a.Setsid || len(a.Argv) != 0 {
		return nil, fmt.Errorf("process: zygote start: Argv, Dir and Setsid are not supported: %w", errs.ErrValue)
	}
	var flags uint32
	switch a.DeathSignal {
	case 0:
	case syscall.SIGKILL:
		flags |= ZygoteDaemon
	default:
		return nil, fmt.Errorf("process: zygote start: death signal %d: only SIGKILL: %w", a.DeathSignal, errs.ErrValue)
	}
	files := a.Files
	if files == nil {
		files = []int{0, 1, 2}
	}
	if len(files) > ZygoteMaxFDs {
		return nil, fmt.Errorf("process: zygote start: %d fds, at most %d: %w", len(files), ZygoteMaxFDs, errs.ErrValue)
	}
	env := a.Env
	if env == nil {
		env = syscall.Environ()
	}
	var block strings.Builder
	for _, kv := range env {
		if strings.IndexByte(kv, 0) >= 0 {
			return nil, fmt.Errorf("process: zygote start: NUL in environment: %w", errs.ErrValue)
		}
		block.WriteString(kv)
		block.WriteByte(0)
	}
	msg := make([]byte, ZygoteHeaderSize, ZygoteHeaderSize+block.Len())
	binary.LittleEndian.PutUint32(msg[0:], ZygoteMagic)
	binary.LittleEndian.PutUint32(msg[4:], flags)
	binary.LittleEndian.PutUint32(msg[8:], uint32(len(files)))
	binary.LittleEndian.PutUint32(msg[12:], uint32(block.Len()))
	msg = append(msg, block.String()...)
	if len(msg) > ZygoteMaxMessage {
		return nil, fmt.Errorf("process: zygote start: environment of %d bytes is too big: %w", block.Len(), errs.ErrValue)
	}

	var reply [2]int
	if err := unix.Pipe2(reply[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("process: zygote start: pipe: %w", err)
	}
	defer unix.Close(reply[0])
	rights := unix.UnixRights(append([]int{reply[1]}, files...)...)
	err := unix.Sendmsg(z.fd, msg, rights, nil, unix.MSG_NOSIGNAL)
	unix.Close(reply[1])
	if err != nil {
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ECONNRESET) {
			return nil, fmt.Errorf("process: zygote start: the zygote is gone: %w", errs.ErrClosed)
		}
		return nil, fmt.Errorf("process: zygote start: send: %w", err)
	}
	var buf [ZygoteReplySize]byte
	n, err := readFull(reply[0], buf[:])
	if err != nil {
		return nil, fmt.Errorf("process: zygote start: reply: %w", err)
	}
	if n < len(buf) {
		return nil, fmt.Errorf("process: zygote start: the zygote died: %w", errs.ErrClosed)
	}
	pid := int64(binary.LittleEndian.Uint64(buf[:]))
	if pid <= 0 {
		return nil, fmt.Errorf("process: zygote start: fork: %w", syscall.Errno(-pid))
	}
	p, err := Adopt(int(pid))
	if err != nil {
		return nil, fmt.Errorf("process: zygote start: %w", err)
	}
	return p, nil
}

// Adopt returns a Process for pid, a child of this process that it did not
// start through Start (a zygote's child, say). Only a child may be adopted:
// until this process reaps it, its pid cannot be reused, so the pidfd
// opened here names it for sure.
func Adopt(pid int) (*Process, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("process: adopt %d: pidfd_open: %w", pid, err)
	}
	return &Process{Pid: pid, fd: fd}, nil
}

// readFull reads until buf is full or end-of-file, retrying EINTR.
func readFull(fd int, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

package process_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/process"
)

// serveZygote is a zygote written in Go for these tests, speaking the
// protocol of zygote.go on fd 3. A Go process cannot fork, so instead of
// running its own code in the child it re-executes the test binary, in the
// role the request's environment names, with CLONE_PARENT as the real
// zygote forks: the child is the test's own child.
func serveZygote() int {
	exe, err := os.Executable()
	if err != nil {
		return 1
	}
	buf := make([]byte, process.ZygoteMaxMessage)
	oob := make([]byte, unix.CmsgSpace(4*(process.ZygoteMaxFDs+1)))
	for {
		n, oobn, _, _, err := unix.Recvmsg(3, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n == 0 {
			return 0
		}
		var fds []int
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			got, _ := unix.ParseUnixRights(&m)
			fds = append(fds, got...)
		}
		msg := buf[:n]
		if len(fds) < 1 || n < process.ZygoteHeaderSize ||
			binary.LittleEndian.Uint32(msg) != process.ZygoteMagic ||
			int(binary.LittleEndian.Uint32(msg[8:])) != len(fds)-1 {
			return 2
		}
		flags := binary.LittleEndian.Uint32(msg[4:])
		var env []string
		for _, kv := range bytes.Split(msg[process.ZygoteHeaderSize:], []byte{0}) {
			if len(kv) > 0 {
				env = append(env, string(kv))
			}
		}
		files := make([]uintptr, len(fds)-1)
		for i, fd := range fds[1:] {
			files[i] = uintptr(fd)
		}
		sys := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_PARENT}
		if flags&process.ZygoteDaemon != 0 {
			sys.Pdeathsig = syscall.SIGKILL
		}
		pid, err := syscall.ForkExec(exe, []string{exe}, &syscall.ProcAttr{Env: env, Files: files, Sys: sys})
		var reply [8]byte
		if err != nil {
			pid = -int(err.(syscall.Errno))
		}
		binary.LittleEndian.PutUint64(reply[:], uint64(int64(pid)))
		unix.Write(fds[0], reply[:])
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// startZygote starts serveZygote and returns a client of it.
func startZygote(t *testing.T) (*process.Zygote, *process.Process) {
	t.Helper()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	zp := start(t, roleZygote, nil, process.Attr{Files: []int{0, 1, 2, sp[1]}, DeathSignal: syscall.SIGKILL})
	unix.Close(sp[1])
	z := process.NewZygote(sp[0])
	t.Cleanup(func() { z.Close() })
	return z, zp
}

func envWithRole(role string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, process.RoleEnv+"=") {
			env = append(env, kv)
		}
	}
	return append(append(env, process.RoleEnv+"="+role), extra...)
}

func TestZygoteStart(t *testing.T) {
	z, _ := startZygote(t)
	for _, code := range []int{0, 7} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		want := "hello " + strconv.Itoa(code)
		env := envWithRole(roleEchoEnv, "MPGO_TEST_ECHO="+want, "MPGO_TEST_EXIT="+strconv.Itoa(code))
		p, err := z.Start(process.Attr{Env: env, Files: []int{0, 1, 2, int(w.Fd())}})
		w.Close()
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		var out bytes.Buffer
		out.ReadFrom(r)
		r.Close()
		if st := wait(t, p); st != code {
			t.Errorf("child exited with %d, want %d", st, code)
		}
		p.Release()
		if out.String() != want {
			t.Errorf("fd 3 got %q, want %q", out.String(), want)
		}
	}
}

func TestZygoteChildIsOurs(t *testing.T) {
	z, zp := startZygote(t)
	p, err := z.Start(process.Attr{Env: envWithRole(roleSleep), DeathSignal: syscall.SIGKILL})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(p.Pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if fields[1] != strconv.Itoa(os.Getpid()) {
		t.Errorf("child's parent is %s, want this process %d (zygote %d)", fields[1], os.Getpid(), zp.Pid)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := wait(t, p); st != -int(syscall.SIGKILL) {
		t.Errorf("status %d, want %d", st, -int(syscall.SIGKILL))
	}
	p.Release()
}

func TestZygoteGone(t *testing.T) {
	z, zp := startZygote(t)
	kill(t, zp)
	_, err := z.Start(process.Attr{Env: envWithRole(roleSleep)})
	if !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Start on a dead zygote: %v, want ErrClosed", err)
	}
}

func TestZygoteBadAttr(t *testing.T) {
	z, _ := startZygote(t)
	for _, a := range []process.Attr{
		{Argv: []string{"x"}},
		{Dir: "/"},
		{DeathSignal: syscall.SIGTERM},
		{Env: []string{"A=\x00"}},
		{Files: make([]int, process.ZygoteMaxFDs+1)},
	} {
		if _, err := z.Start(a); !errors.Is(err, errs.ErrValue) {
			t.Errorf("Start(%+v): %v, want ErrValue", a, err)
		}
	}
}

func TestAdoptNotAChild(t *testing.T) {
	if _, err := process.Adopt(1 << 30); err == nil {
		t.Fatal("Adopt of a pid that does not exist succeeded")
	}
}

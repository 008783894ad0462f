package shm_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/mpgo/core/shm"
)

// roleEnv names the part a re-run test binary plays; refEnv passes it a Ref.
const (
	roleEnv = "MPGO_SHM_TEST_ROLE"
	refEnv  = "MPGO_SHM_TEST_REF"
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

func child(role, ref string) error {
	switch role {
	case "write": // write a greeting into the segment ref names
		r, err := shm.ParseRef(ref)
		if err != nil {
			return err
		}
		seg, err := shm.Attach(r)
		if err != nil {
			return err
		}
		copy(seg.Bytes(), "hello from the child")
		return seg.Close()
	case "hold": // create a segment, print its Ref, hold it until killed
		seg, err := shm.Create("held", 4096)
		if err != nil {
			return err
		}
		copy(seg.Bytes(), "held by the child")
		fmt.Println(seg.Ref())
		time.Sleep(time.Hour)
		return nil
	case "arena": // hammer the arena ref names
		r, err := shm.ParseRef(ref)
		if err != nil {
			return err
		}
		a, err := shm.AttachArena(r)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		return HammerArena(a, uint64(os.Getpid()), 5000)
	}
	return fmt.Errorf("unknown role")
}

// startChild re-runs the test binary as role and returns it with a reader
// of its stdout. The child is killed and reaped when the test ends, and
// dies with this process in any case.
func startChild(t *testing.T, role, ref string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	// Under -race a process sleeps a second at exit, unless told not to.
	cmd.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0", roleEnv+"="+role, refEnv+"="+ref)
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

// HammerArena runs loops random allocations and frees on a, filling each
// block with a pattern of its own and checking it is intact before the
// block is freed: blocks that overlapped would overwrite each other.
func HammerArena(a *shm.Arena, seed uint64, loops int) error {
	rng := rand.New(rand.NewPCG(seed, 1))
	type block struct {
		off, n int
		fill   byte
	}
	var live []block
	mem := a.Bytes()
	check := func(b block) error {
		for i, c := range mem[b.off : b.off+b.n] {
			if c != b.fill {
				return fmt.Errorf("block at %d byte %d = %d, want %d", b.off, i, c, b.fill)
			}
		}
		return nil
	}
	for i := range loops {
		if len(live) > 0 && (rng.IntN(2) == 0 || len(live) > 64) {
			j := rng.IntN(len(live))
			b := live[j]
			live[j] = live[len(live)-1]
			live = live[:len(live)-1]
			if err := check(b); err != nil {
				return err
			}
			if err := a.Free(b.off); err != nil {
				return err
			}
			continue
		}
		n, align := 1+rng.IntN(300), []int{8, 16, 64}[rng.IntN(3)]
		off, err := a.Alloc(n, align)
		if err != nil {
			return err
		}
		if off%align != 0 {
			return fmt.Errorf("offset %d not aligned to %d", off, align)
		}
		b := block{off, n, byte(seed*131+uint64(i)) | 1}
		for k := range mem[off : off+n] {
			mem[off+k] = b.fill
		}
		live = append(live, b)
	}
	for _, b := range live {
		if err := check(b); err != nil {
			return err
		}
		if err := a.Free(b.off); err != nil {
			return err
		}
	}
	return nil
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	s, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("reading from child: %v", err)
	}
	return strings.TrimSpace(s)
}

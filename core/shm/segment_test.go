package shm_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/shm"
)

func TestSegmentCreate(t *testing.T) {
	seg, err := shm.Create("test", 10000)
	if err != nil {
		t.Fatal(err)
	}
	b := seg.Bytes()
	if len(b) != 10000 || b[0] != 0 || b[9999] != 0 {
		t.Fatalf("mapping of %d bytes, want 10000 zero bytes", len(b))
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", seg.FD()))
	if err != nil || !strings.HasPrefix(link, "/memfd:test") {
		t.Fatalf("fd links to %q (%v), want a memfd", link, err)
	}
	if r := seg.Ref(); r.Pid != os.Getpid() || r.FD != seg.FD() || r.Size != 10000 {
		t.Fatalf("Ref() = %+v", r)
	}
	for range 2 {
		if err := seg.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if seg.Bytes() != nil || seg.FD() != -1 {
		t.Fatal("segment still mapped after Close")
	}
	if _, err := shm.Create("x", 0); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("Create(size 0) = %v, want ErrValue", err)
	}
}

func TestRefString(t *testing.T) {
	r := shm.Ref{Pid: 1234, FD: 7, Size: 1 << 33}
	if s := r.String(); s != "1234:7:8589934592" {
		t.Fatalf("String() = %q", s)
	}
	got, err := shm.ParseRef(r.String())
	if err != nil || got != r {
		t.Fatalf("ParseRef(%q) = %+v, %v", r.String(), got, err)
	}
	for _, bad := range []string{"", "1:2", "1:2:3:4", "a:2:3", "1:-2:3", "1:2:3x", "99999999999:1:1"} {
		if _, err := shm.ParseRef(bad); !errors.Is(err, errs.ErrValue) {
			t.Errorf("ParseRef(%q) = %v, want ErrValue", bad, err)
		}
	}
}

func TestSegmentAttachSameProcess(t *testing.T) {
	seg, err := shm.Create("self", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	other, err := shm.Attach(seg.Ref())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.FD() == seg.FD() {
		t.Fatal("Attach reused the holder's descriptor")
	}
	other.Bytes()[100] = 42
	if seg.Bytes()[100] != 42 {
		t.Fatal("write through the attached mapping not seen")
	}
	whole, err := shm.Attach(shm.Ref{Pid: os.Getpid(), FD: seg.FD()})
	if err != nil || len(whole.Bytes()) != 4096 {
		t.Fatalf("Attach(size 0) = %v", err)
	}
	whole.Close()
	if _, err := shm.Attach(shm.Ref{Pid: os.Getpid(), FD: seg.FD(), Size: 8192}); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("Attach(size beyond file) = %v, want ErrValue", err)
	}
}

func TestSegmentAttachChild(t *testing.T) {
	seg, err := shm.Create("child", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	cmd, _ := startChild(t, "write", seg.Ref().String())
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if got := string(seg.Bytes()[:20]); got != "hello from the child" {
		t.Fatalf("parent reads %q", got)
	}
}

// TestSegmentHolderGone attaches to a segment a child created, hands it on
// from this process after the child dies, and checks that the dead child's
// Ref then fails cleanly.
func TestSegmentHolderGone(t *testing.T) {
	cmd, out := startChild(t, "hold", "")
	ref, err := shm.ParseRef(readLine(t, out))
	if err != nil {
		t.Fatal(err)
	}
	seg, err := shm.Attach(ref)
	if err != nil {
		t.Fatal(err)
	}
	defer seg.Close()
	cmd.Process.Kill()
	cmd.Wait()
	if got := string(seg.Bytes()[:17]); got != "held by the child" {
		t.Fatalf("read %q", got)
	}
	if _, err := shm.Attach(ref); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Attach to a dead holder = %v, want ErrClosed", err)
	}
	again, err := shm.Attach(seg.Ref())
	if err != nil {
		t.Fatalf("Attach through a surviving holder: %v", err)
	}
	defer again.Close()
	if string(again.Bytes()[:17]) != "held by the child" {
		t.Fatal("handed-on segment differs")
	}
}

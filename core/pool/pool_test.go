package pool_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/pool"
	"github.com/mpgo/mpgo/core/process"
)

func u64(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }

func TestMapSquares(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 4})
	const n = 10000
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = u64(uint64(i) * 7)
	}
	res, err := p.Map("square", payloads)
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	if len(res) != n {
		t.Fatalf("%d results, want %d", len(res), n)
	}
	for i, r := range res {
		x := uint64(i) * 7
		if !bytes.Equal(r, u64(x*x)) {
			t.Fatalf("result %d = %x, want %x", i, r, u64(x*x))
		}
	}
	if res, err := p.Map("square", nil); err != nil || len(res) != 0 {
		t.Fatalf("Map of nothing: %v, %v", res, err)
	}
}

func TestSubmitLargePayload(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 2})
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	res, err := p.Submit("echo", big).Wait(30 * time.Second)
	if err != nil || !bytes.Equal(res, big) {
		t.Fatalf("echo of 1 MiB: %d bytes, %v", len(res), err)
	}
}

func TestErrors(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 3})
	payloads := make([][]byte, 100)
	for i := range payloads {
		payloads[i] = []byte(strconv.Itoa(i))
	}
	payloads[40] = []byte("fail40")
	payloads[70] = []byte("fail70")
	res, err := p.Map("echo", payloads)
	var te *pool.TaskError
	if !errors.As(err, &te) || te.Name != "echo" || te.Message != "refused fail40" || te.Panic {
		t.Fatalf("Map error = %#v, want the error of task 40", err)
	}
	for i, r := range res {
		if i == 40 || i == 70 {
			if r != nil {
				t.Errorf("failed task %d has result %q", i, r)
			}
		} else if !bytes.Equal(r, payloads[i]) {
			t.Errorf("result %d = %q, want %q", i, r, payloads[i])
		}
	}
	_, err = p.Submit("no-such-function", nil).Wait(30 * time.Second)
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "no-such-function") {
		t.Fatalf("unknown function: %v", err)
	}
}

func TestPanic(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 2})
	before := p.Pids()
	payloads := [][]byte{[]byte("a"), []byte("boom"), []byte("c"), []byte("boom")}
	res, err := p.Map("panic", payloads)
	var te *pool.TaskError
	if !errors.As(err, &te) || !te.Panic || !strings.Contains(te.Message, "boom") {
		t.Fatalf("Map error = %v, want a panic", err)
	}
	if string(res[0]) != "a" || string(res[2]) != "c" {
		t.Fatalf("results %q", res)
	}
	if after := p.Pids(); !slices.Equal(before, after) {
		t.Fatalf("workers %v became %v: a panic must not kill the worker", before, after)
	}
}

func TestFutureTimeout(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 1})
	marker := markerPath(t, "m")
	f := p.Submit("block", []byte("block:"+marker))
	waitMarker(t, marker)
	if _, err := f.Wait(20 * time.Millisecond); !errors.Is(err, errs.ErrTimeout) {
		t.Fatalf("Wait on a blocked task: %v, want ErrTimeout", err)
	}
	if _, err := f.Wait(0); !errors.Is(err, errs.ErrTimeout) {
		t.Fatalf("Wait(0) on a blocked task: %v, want ErrTimeout", err)
	}
}

// TestWorkerKilled kills the worker running one task of a Map, several
// times over: that task fails naming the worker, every other task succeeds,
// and the pool goes on with a replacement.
func TestWorkerKilled(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 3})
	for round := range 4 {
		marker := markerPath(t, fmt.Sprint("m", round))
		payloads := make([][]byte, 300)
		for i := range payloads {
			payloads[i] = []byte(strconv.Itoa(i))
		}
		const victim = 57
		payloads[victim] = []byte("block:" + marker)
		type mapped struct {
			res [][]byte
			err error
		}
		done := make(chan mapped, 1)
		go func() {
			res, err := p.Map("block", payloads)
			done <- mapped{res, err}
		}()
		pid := waitMarker(t, marker)
		if !slices.Contains(p.Pids(), pid) {
			t.Fatalf("round %d: pid %d is not one of the workers %v", round, pid, p.Pids())
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var m mapped
		select {
		case m = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: Map hung after worker %d was killed", round, pid)
		}
		var wl *pool.WorkerLostError
		if !errors.As(m.err, &wl) || wl.Pid != pid || wl.Status != -int(syscall.SIGKILL) {
			t.Fatalf("round %d: Map error = %v, want worker %d lost to SIGKILL", round, m.err, pid)
		}
		if !errors.Is(m.err, errs.ErrProcess) || !strings.Contains(m.err.Error(), strconv.Itoa(pid)) ||
			!strings.Contains(m.err.Error(), "SIGKILL") {
			t.Fatalf("round %d: error %q must wrap ErrProcess and name the pid and signal", round, m.err)
		}
		for i, r := range m.res {
			if i != victim && !bytes.Equal(r, payloads[i]) {
				t.Fatalf("round %d: result %d = %q, want %q", round, i, r, payloads[i])
			}
		}
		if slices.Contains(p.Pids(), pid) {
			t.Fatalf("round %d: dead worker %d still listed", round, pid)
		}
		res, err := p.Map("square", [][]byte{u64(3), u64(4)})
		if err != nil || !bytes.Equal(res[0], u64(9)) || !bytes.Equal(res[1], u64(16)) {
			t.Fatalf("round %d: Map after the kill: %x, %v", round, res, err)
		}
	}
}

func TestMaxTasksPerWorker(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 2, MaxTasksPerWorker: 3})
	res, err := p.Map("pid", make([][]byte, 30))
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	count := map[string]int{}
	for _, r := range res {
		count[string(r)]++
	}
	for pid, n := range count {
		if n > 3 {
			t.Errorf("worker %s ran %d tasks, limit 3", pid, n)
		}
	}
	if len(count) < 10 {
		t.Errorf("30 tasks ran on %d workers, want at least 10", len(count))
	}
}

func TestShutdownWithRetiringWorkers(t *testing.T) {
	// Workers that retire after one task once the pool is shutting down
	// are replaced until the queued tasks are done (CPython issue #10332;
	// Python's Pool.close shuts the engine's pool down at once).
	p := newPool(t, pool.Options{Workers: 2, MaxTasksPerWorker: 1})
	fs := make([]*pool.Future, 8)
	for i := range fs {
		fs[i] = p.Submit("square", u64(uint64(i)))
	}
	p.Shutdown()
	for i, f := range fs {
		res, err := f.Wait(30 * time.Second)
		if err != nil || !bytes.Equal(res, u64(uint64(i*i))) {
			t.Fatalf("task %d after Shutdown: %x, %v", i, res, err)
		}
	}
	<-p.Done()
}

// gone reports whether no process has pid any more.
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestClose(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 3})
	fs := make([]*pool.Future, 50)
	for i := range fs {
		fs[i] = p.Submit("square", u64(uint64(i)))
	}
	pids := p.Pids()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i, f := range fs {
		res, err := f.Wait(0)
		if err != nil || !bytes.Equal(res, u64(uint64(i*i))) {
			t.Fatalf("task %d after Close: %x, %v", i, res, err)
		}
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("worker %d outlived Close", pid)
		}
	}
	if _, err := p.Submit("square", u64(1)).Wait(0); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestTerminate(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 2})
	marker := markerPath(t, "m")
	blocked := p.Submit("block", []byte("block:"+marker))
	waitMarker(t, marker)
	pids := p.Pids()
	if err := p.Terminate(); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if _, err := blocked.Wait(0); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("blocked task after Terminate: %v, want ErrClosed", err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("worker %d outlived Terminate", pid)
		}
	}
	if _, err := p.Map("square", [][]byte{u64(1)}); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("Map after Terminate: %v, want ErrClosed", err)
	}
}

// TestLostHandoff checks that a task taken by a worker that died before
// recording it in its slot fails instead of hanging, charged to that worker.
// TestUncommittedClaim: a worker that dies after claiming a task and before
// its take commits leaves the task queued; it is run, not failed.
func TestUncommittedClaim(t *testing.T) {
	p := newPool(t, pool.Options{Workers: 1})
	marker := markerPath(t, "block")
	blocked := p.Submit("block", []byte("block:"+marker))
	pid := waitMarker(t, marker)
	queued := p.Submit("square", u64(9))
	pool.FakeClaim(p, 0, pool.LastID(p))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	res, err := queued.Wait(30 * time.Second)
	if err != nil || !bytes.Equal(res, u64(81)) {
		t.Fatalf("the queued task: %x, %v; want it run by the replacement", res, err)
	}
	// The blocked task's claim was overwritten: it is failed by Terminate.
	p.Terminate()
	if _, err := blocked.Wait(30 * time.Second); !errors.Is(err, errs.ErrClosed) {
		t.Fatalf("blocked task after Terminate: %v", err)
	}
}

// TestStartupFailures: workers that keep dying before they are ready break
// the pool instead of being replaced for ever.
func TestStartupFailures(t *testing.T) {
	var spawned int
	p, err := pool.New(pool.Options{Workers: 1, External: true, Spawn: func(slot int, args []string) (*process.Process, error) {
		spawned++
		return process.Start(process.Attr{Argv: []string{"/bin/sh", "-c", "kill -9 $$"}, DeathSignal: syscall.SIGKILL})
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	defer p.Terminate()
	buf := make([]byte, 4096)
	n, err := p.Results().Get(buf, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if status := buf[12]; status != pool.StatusBroken || !strings.Contains(string(buf[13:n]), " -9 pool: 3 workers in a row died before they started") {
		t.Fatalf("status %d, %q; want StatusBroken", buf[12], buf[13:n])
	}
	if spawned != 3 {
		t.Fatalf("%d workers started, want 3", spawned)
	}
}

// TestExternal drives a pool the way mpgo's Python Pool does: it puts task
// messages and reads result messages itself; the pool supervises.
func TestExternal(t *testing.T) {
	p, err := pool.New(pool.Options{Workers: 2, External: true,
		Spawn: func(slot int, args []string) (*process.Process, error) {
			return process.Reexec(pool.WorkerRole, args, process.Attr{DeathSignal: syscall.SIGKILL})
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Free()
	defer p.Terminate()
	task := func(id uint64, name string, payload []byte) []byte {
		m := binary.LittleEndian.AppendUint64(nil, id)
		m = binary.LittleEndian.AppendUint16(m, uint16(len(name)))
		return append(append(m, name...), payload...)
	}
	buf := make([]byte, 1<<16)
	next := func() (id uint64, status byte, body string) {
		t.Helper()
		n, err := p.Results().Get(buf, 30*time.Second)
		if err != nil {
			t.Fatalf("result: %v", err)
		}
		return binary.LittleEndian.Uint64(buf), buf[12], string(buf[13:n])
	}
	for i := uint64(1); i <= 100; i++ {
		if err := p.Tasks().Put(task(i, "square", u64(i)), -1); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]bool{}
	for range 100 {
		id, status, body := next()
		if status != pool.StatusOK || body != string(u64(id*id)) || seen[id] {
			t.Fatalf("result of %d: status %d, %x", id, status, body)
		}
		seen[id] = true
	}
	// A worker killed while running a task: a StatusLost message for it.
	marker := markerPath(t, "block")
	if err := p.Tasks().Put(task(101, "block", []byte("block:"+marker)), -1); err != nil {
		t.Fatal(err)
	}
	pid := waitMarker(t, marker)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	id, status, body := next()
	if id != 101 || status != pool.StatusLost || body != fmt.Sprintf("%d %d", pid, -int(syscall.SIGKILL)) {
		t.Fatalf("after the kill: id %d, status %d, %q", id, status, body)
	}
	// The pool goes on, then shuts down: StatusClosed comes last.
	if err := p.Tasks().Put(task(102, "square", u64(3)), -1); err != nil {
		t.Fatal(err)
	}
	if id, status, _ := next(); id != 102 || status != pool.StatusOK {
		t.Fatalf("after the loss: id %d, status %d", id, status)
	}
	p.Shutdown()
	if id, status, _ := next(); id != 0 || status != pool.StatusClosed {
		t.Fatalf("after Shutdown: id %d, status %d", id, status)
	}
	<-p.Done()
}

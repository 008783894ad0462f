package pool

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/process"
	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
)

// WorkerRole is the process.Role of a pool worker: workers are re-executions
// of the running binary in this role.
const WorkerRole = "mpgo-pool-worker"

// Func is a function a pool runs. payload is valid only until Func returns;
// the result may alias it.
type Func func(payload []byte) ([]byte, error)

var registry struct {
	sync.RWMutex
	fns map[string]Func
}

// Register makes fn callable by name in worker processes. Call it from init
// or early in main, before Serve, in every process: the workers are
// re-executions of the same binary and find fn by name. Registering a name
// twice, or a name longer than 65535 bytes, panics.
func Register(name string, fn func(payload []byte) ([]byte, error)) {
	if len(name) > maxName {
		panic("pool: Register: name too long")
	}
	registry.Lock()
	defer registry.Unlock()
	if registry.fns == nil {
		registry.fns = make(map[string]Func)
	}
	if _, dup := registry.fns[name]; dup {
		panic("pool: Register: duplicate name " + strconv.Quote(name))
	}
	registry.fns[name] = fn
}

func lookup(name string) Func {
	registry.RLock()
	defer registry.RUnlock()
	return registry.fns[name]
}

// Serve must be called first thing in main (or TestMain), after the
// functions are registered. In a worker process (process.Role() ==
// WorkerRole) it runs the worker loop and exits the process; elsewhere it
// returns at once.
func Serve() {
	if process.Role() != WorkerRole {
		return
	}
	if err := work(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pool worker:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// work runs the worker loop. Its arguments, as New passes them: the task
// queue's Ref, the result queue's Ref, the slot region's Ref, this worker's
// slot, and how many tasks to run before exiting (0: no limit). It returns
// nil when the task queue is shut down or the task limit is reached.
func work(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("%d arguments, want 5: %w", len(args), errs.ErrValue)
	}
	var refs [3]shm.Ref
	for i := range refs {
		r, err := shm.ParseRef(args[i])
		if err != nil {
			return err
		}
		refs[i] = r
	}
	idx, err1 := strconv.Atoi(args[3])
	maxTasks, err2 := strconv.Atoi(args[4])
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	tasks, err := queue.Attach(refs[0])
	if err != nil {
		return err
	}
	results, err := queue.Attach(refs[1])
	if err != nil {
		return err
	}
	seg, err := shm.Attach(refs[2])
	if err != nil {
		return err
	}
	if idx < 0 || (idx+1)*slotSize > len(seg.Bytes()) {
		return fmt.Errorf("slot %d out of range: %w", idx, errs.ErrValue)
	}
	s := slotAt(seg.Bytes(), idx)
	s.pid.Store(uint32(os.Getpid()))

	buf := make([]byte, 64<<10)
	hdr := make([]byte, 0, resultBody)
	for done := 0; maxTasks == 0 || done < maxTasks; {
		// Announce the Get: a worker killed between the Get's commit and
		// the store of the task id below leaves slotTaking, which tells the
		// parent a task may have gone with it.
		s.task.Store(slotTaking)
		n, err := tasks.Get(buf, -1)
		if errors.Is(err, errs.ErrTooShort) {
			buf = make([]byte, max(n, 2*len(buf)))
			continue
		}
		if errors.Is(err, errs.ErrClosed) {
			s.task.Store(0)
			return nil
		}
		if err != nil {
			return err
		}
		id, name, payload, err := parseTask(buf[:n])
		if err != nil {
			return err
		}
		s.task.Store(id)
		status, out := call(name, payload)
		if err := results.PutV([][]byte{resultHeader(hdr, id, idx, status), out}, -1); err != nil {
			return err
		}
		// Cleared only once the result is in the queue, so that a worker
		// killed in between leaves the id for the parent to settle.
		s.task.Store(0)
		done++
	}
	return nil
}

// call runs the function registered as name, turning an error or a panic
// into a status and its text.
func call(name string, payload []byte) (status byte, out []byte) {
	fn := lookup(name)
	if fn == nil {
		return statusError, []byte("no function registered as " + strconv.Quote(name))
	}
	defer func() {
		if r := recover(); r != nil {
			status, out = statusPanic, fmt.Appendf(nil, "%v\n%s", r, debug.Stack())
		}
	}()
	res, err := fn(payload)
	if err != nil {
		return statusError, []byte(err.Error())
	}
	return statusOK, res
}

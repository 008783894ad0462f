package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

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

// Worker is one worker's end of a pool: the task and result queues and its
// slot. Go workers use it through Serve; a worker in another language (mpgo's
// Python pool workers, through capi) uses it directly, with the same
// arguments New gives workers.
type Worker struct {
	tasks, results *queue.Queue
	seg            *shm.Segment
	s              slot
	slot           int
	// MaxTasks is how many tasks the worker runs before it exits (0: no
	// limit); the driver counts them.
	MaxTasks int
	hdr      []byte
}

// AttachWorker attaches a worker's end of a pool. args, as New passes them:
// the task queue's Ref, the result queue's Ref, the slot region's Ref, this
// worker's slot, and how many tasks to run before exiting (0: no limit).
func AttachWorker(args []string) (*Worker, error) {
	if len(args) != 5 {
		return nil, fmt.Errorf("pool worker: %d arguments, want 5: %w", len(args), errs.ErrValue)
	}
	var refs [3]shm.Ref
	for i := range refs {
		r, err := shm.ParseRef(args[i])
		if err != nil {
			return nil, err
		}
		refs[i] = r
	}
	idx, err1 := strconv.Atoi(args[3])
	maxTasks, err2 := strconv.Atoi(args[4])
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pool worker: %w: %w", err, errs.ErrValue)
	}
	w := &Worker{slot: idx, MaxTasks: maxTasks, hdr: make([]byte, 0, resultBody)}
	var err error
	if w.tasks, err = queue.Attach(refs[0]); err != nil {
		return nil, err
	}
	if w.results, err = queue.Attach(refs[1]); err != nil {
		w.Close()
		return nil, err
	}
	if w.seg, err = shm.Attach(refs[2]); err != nil {
		w.Close()
		return nil, err
	}
	if idx < 0 || (idx+1)*slotSize > len(w.seg.Bytes()) {
		w.Close()
		return nil, fmt.Errorf("pool worker: slot %d out of range: %w", idx, errs.ErrValue)
	}
	w.s = slotAt(w.seg.Bytes(), idx)
	return w, nil
}

// Ready tells the parent the worker has started: a worker that dies before
// it is ready makes the parent suspect that no worker can start.
func (w *Worker) Ready() { w.s.pid.Store(uint32(os.Getpid())) }

// Take waits at most timeout (< 0: no limit) for the next task and copies
// its message into buf, claiming it in the worker's slot atomically with the
// take. It returns the message's length; errors are the queue's (ErrEmpty
// on timeout, ErrClosed once the pool stops, ErrTooShort with the length
// needed).
func (w *Worker) Take(buf []byte, timeout time.Duration) (int, error) {
	return w.tasks.GetClaim(buf, timeout, w.claim)
}

func (w *Worker) claim(pos uint64, msg []byte) {
	if len(msg) < taskName {
		return // not a task: the worker fails on it after the take
	}
	w.s.pos.Store(pos + 1)
	w.s.task.Store(binary.LittleEndian.Uint64(msg[taskID:]))
}

// Done puts the result of task id, made of parts laid end to end, and then
// clears the worker's claim.
func (w *Worker) Done(id uint64, status byte, parts ...[]byte) error {
	err := w.put(id, status, parts)
	// Cleared only once the result is in the queue, so that a worker killed
	// in between leaves the claim for the parent to settle.
	w.s.task.Store(0)
	w.s.pos.Store(0)
	return err
}

// Backlog returns how many results wait in the result queue for the
// parent to read them.
func (w *Worker) Backlog() int { return w.results.Len() }

// Report puts a message about no task, such as StatusInitFailed.
func (w *Worker) Report(status byte, body []byte) error {
	return w.put(0, status, [][]byte{body})
}

func (w *Worker) put(id uint64, status byte, parts [][]byte) error {
	hdr := resultHeader(w.hdr, id, w.slot, status)
	if len(parts) == 1 {
		return w.results.PutV([][]byte{hdr, parts[0]}, -1)
	}
	return w.results.PutV(append([][]byte{hdr}, parts...), -1)
}

// Close detaches the queues and the slot region.
func (w *Worker) Close() error {
	var errList []error
	for _, q := range []*queue.Queue{w.tasks, w.results} {
		if q != nil {
			errList = append(errList, q.Close())
		}
	}
	if w.seg != nil {
		errList = append(errList, w.seg.Close())
	}
	return errors.Join(errList...)
}

// ParseTask decodes a task message as Take returns it: the task's id, its
// function's name and its payload (both aliasing m).
func ParseTask(m []byte) (id uint64, name, payload []byte, err error) {
	if len(m) < taskName {
		return 0, nil, nil, fmt.Errorf("pool: task message of %d bytes: %w", len(m), errs.ErrInternal)
	}
	id = binary.LittleEndian.Uint64(m[taskID:])
	n := int(binary.LittleEndian.Uint16(m[taskNameLen:]))
	if len(m) < taskName+n {
		return 0, nil, nil, fmt.Errorf("pool: task message of %d bytes, name of %d: %w", len(m), n, errs.ErrInternal)
	}
	return id, m[taskName : taskName+n], m[taskName+n:], nil
}

// work runs the Go worker loop. It returns nil when the task queue is shut
// down or the task limit is reached.
func work(args []string) error {
	w, err := AttachWorker(args)
	if err != nil {
		return err
	}
	defer w.Close()
	w.Ready()
	buf := make([]byte, 64<<10)
	for done := 0; w.MaxTasks == 0 || done < w.MaxTasks; {
		n, err := w.Take(buf, -1)
		if errors.Is(err, errs.ErrTooShort) {
			buf = make([]byte, max(n, 2*len(buf)))
			continue
		}
		if errors.Is(err, errs.ErrClosed) {
			return nil
		}
		if err != nil {
			return err
		}
		id, name, payload, err := ParseTask(buf[:n])
		if err != nil {
			return err
		}
		status, out := call(string(name), payload)
		if err := w.Done(id, status, out); err != nil {
			return err
		}
		done++
	}
	return nil
}

// call runs the function registered as name, turning an error or a panic
// into a status and its text.
func call(name string, payload []byte) (status byte, out []byte) {
	fn := lookup(name)
	if fn == nil {
		return StatusError, []byte("no function registered as " + strconv.Quote(name))
	}
	defer func() {
		if r := recover(); r != nil {
			status, out = StatusPanic, fmt.Appendf(nil, "%v\n%s", r, debug.Stack())
		}
	}()
	res, err := fn(payload)
	if err != nil {
		return StatusError, []byte(err.Error())
	}
	return StatusOK, res
}

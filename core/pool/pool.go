// Package pool is a process pool with supervised workers: the scheduler
// under mpgo's Pool, usable directly from Go.
//
// Workers are re-executions of the running binary (process.Reexec in
// WorkerRole), so a program registers its functions by name with Register
// and calls Serve first thing in main; in a worker, Serve runs the worker
// loop and never returns.
//
// Tasks travel on one shared task queue and results come back on one result
// queue (core/queue); workers attach both by the Refs on their command line.
// The message encodings are documented in wire.go.
//
// Supervision. Every worker has a slot in a small shared region where it
// claims the task it takes, atomically with the take (see the slot layout in
// wire.go). A goroutine per worker waits on its pidfd; when a worker dies
// (signal, exit, crash) the parent first collects every result it put, then
// fails the task it had claimed and taken with a *WorkerLostError naming its
// pid and status, and starts a replacement in the same slot. Every other
// task completes; a task the dead worker claimed but had not taken stays
// queued for another worker.
//
// External mode. A driver in another language (mpgo's Python Pool) sets
// Options.External and Options.Spawn: it puts task messages on Tasks()
// itself and reads Results() itself, and the pool supervises the workers,
// putting a StatusLost message for a dead worker's task, StatusBroken when
// workers cannot be started and StatusClosed once every worker is gone.
//
// Workers die with the parent (PR_SET_PDEATHSIG SIGKILL), and Close and
// Terminate reap every worker before they return.
package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/process"
	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
)

// maxStartupFailures is how many workers in a row may die before they are
// ready (by a signal; an exit breaks the pool at once) before the pool is
// broken.
const maxStartupFailures = 3

// Options configures a Pool.
type Options struct {
	// Workers is the number of worker processes; 0 means runtime.NumCPU().
	Workers int
	// MaxTasksPerWorker, if positive, makes a worker exit after that many
	// tasks; a fresh one replaces it. 0 means no limit.
	MaxTasksPerWorker int
	// Spawn, if set, starts the worker for slot with the arguments it must
	// hand to AttachWorker, instead of re-executing this binary. The
	// process must die with the parent.
	Spawn func(slot int, args []string) (*process.Process, error)
	// External makes the caller the producer of Tasks() and the consumer of
	// Results() (see the package comment); Submit and Map are not used.
	External bool
}

// Pool is a set of supervised worker processes. Its methods are safe for
// concurrent use.
type Pool struct {
	opts    Options
	tasks   *queue.Queue
	results *queue.Queue
	slots   *shm.Segment
	deaths  chan death
	done    chan struct{} // closed when the manager has stopped everything

	mu          sync.Mutex
	lastID      uint64 // id of the last task put; puts happen under mu
	pending     map[uint64]*Future
	procs       []*process.Process // by slot; nil while a slot is empty
	live        int                // workers started and not yet settled
	closing     bool               // no more submits
	stopping    bool               // no more replacements; shut down once live == 0
	terminating bool               // pending tasks fail with ErrClosed, not WorkerLostError
	broken      error              // set when workers cannot be started: every task fails with it

	startupFailures int           // workers in a row that died before they were ready; under mu
	wakeCh          chan struct{} // External mode: wakes the manager
	freed           bool          // under mu
}

// death is a worker's exit, reported by its supervising goroutine.
type death struct {
	slot   int
	proc   *process.Process
	status int
	err    error
}

// Future is the pending result of a task.
type Future struct {
	name string
	done chan struct{}
	res  []byte
	err  error
}

// Wait waits at most timeout (< 0: no limit) for the task and returns its
// result or error. It fails with an error wrapping errs.ErrTimeout if the
// task is still running; the task is not cancelled and Wait may be called
// again. A task's error is a *TaskError, a *WorkerLostError, or wraps
// errs.ErrClosed when the pool was terminated or closed before it ran.
func (f *Future) Wait(timeout time.Duration) (result []byte, err error) {
	select {
	case <-f.done:
		return f.res, f.err
	default:
	}
	if timeout == 0 {
		return nil, fmt.Errorf("pool: wait: %w", errs.ErrTimeout)
	}
	var after <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		after = t.C
	}
	select {
	case <-f.done:
		return f.res, f.err
	case <-after:
		return nil, fmt.Errorf("pool: wait: %w", errs.ErrTimeout)
	}
}

func (f *Future) complete(res []byte, err error) {
	f.res, f.err = res, err
	close(f.done)
}

// New starts a pool of opts.Workers workers. It fails with an error wrapping
// errs.ErrValue in a worker process: that means main did not call Serve
// first, and a pool there would start workers without end.
func New(opts Options) (*Pool, error) {
	if process.Role() == WorkerRole {
		return nil, fmt.Errorf("pool: New in a worker process: call pool.Serve first in main: %w", errs.ErrValue)
	}
	if opts.Workers < 0 || opts.MaxTasksPerWorker < 0 {
		return nil, fmt.Errorf("pool: negative Options: %w", errs.ErrValue)
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.NumCPU()
	}
	p := &Pool{
		opts:    opts,
		pending: make(map[uint64]*Future),
		procs:   make([]*process.Process, opts.Workers),
		deaths:  make(chan death, opts.Workers),
		done:    make(chan struct{}),
		wakeCh:  make(chan struct{}, 1),
	}
	var err error
	if p.tasks, err = queue.New(0); err != nil {
		return nil, err
	}
	if p.results, err = queue.New(0); err != nil {
		p.tasks.Close()
		return nil, err
	}
	if p.slots, err = shm.Create("mpgo-pool-slots", opts.Workers*slotSize); err != nil {
		p.tasks.Close()
		p.results.Close()
		return nil, err
	}
	for i := range opts.Workers {
		if err := p.start(i); err != nil {
			p.mu.Lock()
			p.stopping, p.closing, p.terminating = true, true, true
			p.killLocked()
			p.mu.Unlock()
			p.wake() // in case no worker started: no death will wake the manager
			go p.manage()
			<-p.done
			return nil, err
		}
	}
	go p.manage()
	return p, nil
}

// start starts a worker in slot i and a goroutine that reports its death.
func (p *Pool) start(i int) error {
	s := slotAt(p.slots.Bytes(), i)
	s.task.Store(0)
	s.pid.Store(0)
	s.pos.Store(0)
	args := []string{p.tasks.Ref().String(), p.results.Ref().String(), p.slots.Ref().String(),
		strconv.Itoa(i), strconv.Itoa(p.opts.MaxTasksPerWorker)}
	var proc *process.Process
	var err error
	if p.opts.Spawn != nil {
		proc, err = p.opts.Spawn(i, args)
	} else {
		attr := process.Attr{DeathSignal: syscall.SIGKILL}
		if raceEnabled {
			attr.Env = append(os.Environ(), "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
		}
		proc, err = process.Reexec(WorkerRole, args, attr)
	}
	if err != nil {
		return fmt.Errorf("pool: start worker: %w", err)
	}
	p.mu.Lock()
	p.procs[i] = proc
	p.live++
	if p.terminating {
		proc.Signal(syscall.SIGKILL) // Terminate ran while it started
	}
	p.mu.Unlock()
	go func() {
		status, _, err := proc.Wait(-1)
		p.deaths <- death{slot: i, proc: proc, status: status, err: err}
		p.wake()
	}()
	return nil
}

// wake makes the manager look at its channels now. After the manager has
// closed the result queue the Put fails, which is fine: nobody is left to
// wake.
func (p *Pool) wake() {
	if p.opts.External {
		select {
		case p.wakeCh <- struct{}{}:
		default:
		}
		return
	}
	p.results.Put(make([]byte, 8), -1) // task id 0
}

// Tasks returns the task queue, for an External driver to put tasks on.
func (p *Pool) Tasks() *queue.Queue { return p.tasks }

// Results returns the result queue, for an External driver to read.
func (p *Pool) Results() *queue.Queue { return p.results }

// Shutdown stops the pool once the tasks already queued are done, without
// waiting: idle workers exit, no worker is replaced, and in External mode a
// StatusClosed message follows the last result.
func (p *Pool) Shutdown() {
	p.mu.Lock()
	p.closing = true
	if !p.stopping {
		p.stopping = true
		p.tasks.Shutdown() // idle workers' Gets return ErrClosed: they exit
	}
	p.mu.Unlock()
	p.wake() // in case no worker is left to die and wake the manager
}

// Done returns a channel closed once the pool has stopped and every worker
// has been reaped.
func (p *Pool) Done() <-chan struct{} { return p.done }

// Free releases the queues and the slot region of an External pool once it
// has stopped (after Terminate, or when Done is closed). In Go mode the pool
// frees them itself.
func (p *Pool) Free() error {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.freed {
		return nil
	}
	p.freed = true
	return errors.Join(p.tasks.Close(), p.results.Close(), p.slots.Close())
}

// Pids returns the pids of the current workers, by slot; 0 marks a slot
// whose worker is being replaced.
func (p *Pool) Pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, len(p.procs))
	for i, proc := range p.procs {
		if proc != nil {
			pids[i] = proc.Pid
		}
	}
	return pids
}

// Submit queues the task of running the function registered as name on
// payload, and returns its Future. After Close or Terminate the Future
// fails with an error wrapping errs.ErrClosed.
func (p *Pool) Submit(name string, payload []byte) *Future {
	return p.submit(name, [][]byte{payload})[0]
}

// Map runs the function registered as name on every payload and returns the
// results in order. Every task runs to the end even when one fails; the
// error is that of the first failed task in payload order, and results
// holds every successful result even then.
func (p *Pool) Map(name string, payloads [][]byte) (results [][]byte, err error) {
	fs := p.submit(name, payloads)
	results = make([][]byte, len(fs))
	for i, f := range fs {
		res, ferr := f.Wait(-1)
		results[i] = res
		if ferr != nil && err == nil {
			err = ferr
		}
	}
	return results, err
}

// submit queues one task per payload, in order, under one hold of the
// queue's lock per batch.
func (p *Pool) submit(name string, payloads [][]byte) []*Future {
	fs := make([]*Future, len(payloads))
	for i := range fs {
		fs[i] = &Future{name: name, done: make(chan struct{})}
	}
	fail := func(err error) []*Future {
		for _, f := range fs {
			f.complete(nil, err)
		}
		return fs
	}
	if len(name) > maxName {
		return fail(fmt.Errorf("pool: submit: name of %d bytes: %w", len(name), errs.ErrValue))
	}
	const batch = 1024
	msgs := make([][]byte, 0, min(batch, len(payloads)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return fail(fmt.Errorf("pool: submit: %w", errs.ErrClosed))
	}
	if p.broken != nil {
		return fail(p.broken)
	}
	for start := 0; start < len(payloads); start += batch {
		msgs = msgs[:0]
		for i := start; i < min(start+batch, len(payloads)); i++ {
			hdr := taskHeader(make([]byte, 0, taskName+len(name)+len(payloads[i])), p.lastID+1+uint64(i-start), name)
			msgs = append(msgs, append(hdr, payloads[i]...))
		}
		n, err := p.tasks.PutMany(msgs, -1)
		for i := start; i < start+n; i++ {
			p.lastID++
			p.pending[p.lastID] = fs[i]
		}
		if err != nil {
			err = fmt.Errorf("pool: submit: %w", err)
			for _, f := range fs[start+n:] {
				f.complete(nil, err)
			}
			break
		}
	}
	return fs
}

// Close stops accepting tasks, waits for every submitted task to finish,
// then stops the workers and waits for them to exit. Later calls return nil.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closing = true
	fs := make([]*Future, 0, len(p.pending))
	for _, f := range p.pending {
		fs = append(fs, f)
	}
	p.mu.Unlock()
	for _, f := range fs {
		f.Wait(-1)
	}
	p.Shutdown()
	<-p.done
	return nil
}

// Terminate kills the workers at once and waits for them to be reaped;
// every pending Future fails with an error wrapping errs.ErrClosed.
func (p *Pool) Terminate() error {
	p.mu.Lock()
	p.closing, p.stopping, p.terminating = true, true, true
	p.killLocked()
	p.mu.Unlock()
	p.wake()
	<-p.done
	return nil
}

func (p *Pool) killLocked() {
	for _, proc := range p.procs {
		if proc != nil {
			proc.Signal(syscall.SIGKILL)
		}
	}
}

// manage is the one goroutine that takes results, settles deaths and
// sweeps for lost handoffs. Once the pool is stopping and every worker is
// gone, it fails what is left and frees the queues.
func (p *Pool) manage() {
	defer close(p.done)
	if p.opts.External {
		p.manageExternal()
		return
	}
	buf := make([]byte, 64<<10)
	for {
		lens, err := p.results.GetMany(buf, 256, -1)
		switch {
		case err == nil:
			off := 0
			for _, n := range lens {
				p.deliver(buf[off : off+n])
				off += n
			}
		case errors.Is(err, errs.ErrTooShort):
			buf = make([]byte, max(lens[0], 2*len(buf)))
		case errors.Is(err, errs.ErrEmpty):
		default:
			panic("pool: result queue: " + err.Error()) // only Close ends it, and only here
		}
		for len(p.deaths) > 0 {
			p.settle(<-p.deaths, &buf)
		}
		p.mu.Lock()
		finished := p.stopping && p.live == 0
		p.mu.Unlock()
		if finished {
			p.drain(&buf)
			p.shutdown()
			return
		}
	}
}

// manageExternal is manage for an External pool: the driver reads the
// results, so the manager only settles deaths.
func (p *Pool) manageExternal() {
	for {
		select {
		case d := <-p.deaths:
			p.settle(d, nil)
		case <-p.wakeCh:
		}
		p.mu.Lock()
		finished := p.stopping && p.live == 0
		p.mu.Unlock()
		if finished && len(p.deaths) == 0 {
			p.mu.Lock()
			p.failAllLocked(fmt.Errorf("pool: %w", errs.ErrClosed))
			p.mu.Unlock()
			p.notify(0, 0, StatusClosed, nil)
			return
		}
	}
}

// notify puts a message of the pool's own on the result queue, for an
// External driver.
func (p *Pool) notify(id uint64, slot int, status byte, body []byte) {
	p.results.PutV([][]byte{resultHeader(nil, id, slot, status), body}, -1)
}

// drain delivers every result already in the result queue.
func (p *Pool) drain(buf *[]byte) {
	for {
		lens, err := p.results.GetMany(*buf, 256, 0)
		if errors.Is(err, errs.ErrTooShort) {
			*buf = make([]byte, max(lens[0], 2*len(*buf)))
			continue
		}
		if err != nil {
			return
		}
		off := 0
		for _, n := range lens {
			p.deliver((*buf)[off : off+n])
			off += n
		}
	}
}

// deliver completes the future of one result message.
func (p *Pool) deliver(m []byte) {
	if len(m) < resultBody {
		return // a wake-up
	}
	id := binary.LittleEndian.Uint64(m[resultID:])
	f := p.take(id)
	if f == nil {
		return // already failed (a sweep, or Terminate)
	}
	body := append([]byte(nil), m[resultBody:]...)
	switch m[resultStatus] {
	case StatusOK:
		f.complete(body, nil)
	default:
		f.complete(nil, &TaskError{Name: f.name, Message: string(body), Panic: m[resultStatus] == StatusPanic})
	}
}

// take removes and returns the pending future of task id, or nil.
func (p *Pool) take(id uint64) *Future {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.pending[id]
	delete(p.pending, id)
	return f
}

// settle handles a worker's death: it collects whatever the worker put (Go
// mode; buf is nil in External mode, where the driver reads the results and
// finds them ahead of the StatusLost message), fails the task the worker
// had taken, and starts a replacement.
func (p *Pool) settle(d death, buf *[]byte) {
	d.proc.Release()
	// A dead worker's puts are all committed or gone: collect them first,
	// so a task whose result made it is not failed.
	if buf != nil {
		p.drain(buf)
	}
	s := slotAt(p.slots.Bytes(), d.slot)
	task, pos, started := s.task.Load(), s.pos.Load(), s.pid.Load() != 0
	if task != 0 && pos != 0 {
		// Claimed; lost only if the take committed (see wire.go).
		if taken, err := p.tasks.Taken(pos - 1); err == nil && !taken {
			task = 0
		}
	}
	status := d.status
	if d.err != nil {
		status = -int(syscall.SIGKILL) // unknown; Wait only fails on a closed pidfd
	}
	p.mu.Lock()
	p.procs[d.slot] = nil
	p.live--
	terminating, stopping := p.terminating, p.stopping
	if task != 0 && !terminating {
		if p.opts.External {
			p.mu.Unlock()
			p.notify(task, d.slot, StatusLost, fmt.Appendf(nil, "%d %d", d.proc.Pid, status))
			p.mu.Lock()
		} else if f := p.pending[task]; f != nil {
			delete(p.pending, task)
			p.mu.Unlock()
			f.complete(nil, &WorkerLostError{Pid: d.proc.Pid, Status: status, Task: task})
			p.mu.Lock()
		}
	}
	if started {
		p.startupFailures = 0
	} else if !stopping {
		p.startupFailures++
	}
	// A worker that exits by itself before it is ready will not do better
	// the next time: most likely main does not call Serve first, or the
	// driver's worker cannot start (its initializer failed).
	if !stopping && p.broken == nil {
		switch {
		case !started && status >= 0:
			p.breakLocked(d.proc.Pid, status, fmt.Errorf("pool: worker %d exited with status %d before it started (is pool.Serve called first in main?): %w",
				d.proc.Pid, status, errs.ErrProcess))
		case p.startupFailures >= maxStartupFailures:
			p.breakLocked(d.proc.Pid, status, fmt.Errorf("pool: %d workers in a row died before they started, the last (%d) with status %d: %w",
				p.startupFailures, d.proc.Pid, status, errs.ErrProcess))
		}
	}
	// While stopping (Shutdown), the tasks already queued still run: a
	// worker that had started and then retired (MaxTasksPerWorker) or died
	// is replaced as long as some are left, as CPython's pool keeps its
	// workers until its cache is empty. One that never started is not: it
	// would only fail again (a failing initializer).
	replace := p.broken == nil && !terminating &&
		(!stopping || (started && p.tasks.Len() > 0))
	p.mu.Unlock()
	if !replace {
		return
	}
	if err := p.start(d.slot); err != nil {
		p.mu.Lock()
		if p.broken == nil {
			p.breakLocked(d.proc.Pid, status, fmt.Errorf("pool: cannot replace worker %d: %w", d.proc.Pid, err))
		}
		p.mu.Unlock()
	}
}

// breakLocked makes every task fail with err from now on; pid and status
// are those of the worker whose death broke the pool.
func (p *Pool) breakLocked(pid, status int, err error) {
	p.broken = err
	p.failAllLocked(err)
	if p.opts.External {
		p.notify(0, 0, StatusBroken, fmt.Appendf(nil, "%d %d %s", pid, status, err))
	}
}

func (p *Pool) failAllLocked(err error) {
	for id, f := range p.pending {
		delete(p.pending, id)
		f.complete(nil, err)
	}
}

// shutdown fails whatever is still pending and frees the pool's memory.
func (p *Pool) shutdown() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failAllLocked(fmt.Errorf("pool: %w", errs.ErrClosed))
	p.freed = true
	p.tasks.Close()
	p.results.Close()
	p.slots.Close()
}

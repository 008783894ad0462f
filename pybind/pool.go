package pybind

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/pool"
	"github.com/mpgo/mpgo/core/process"
	"github.com/mpgo/mpgo/internal/handles"
)

// pyPool is an External core/pool pool driven by mpgo's Python Pool, with
// the handles its queues have in handles.Queues (for the C fast path).
type pyPool struct {
	p              *pool.Pool
	tasks, results int64
	mu             sync.Mutex
	serial         int
	zygote         *process.Zygote // under mu; nil: spawn fresh interpreters
}

var pyPools sync.Map // pool handle -> *pyPool

// PoolNew starts an External pool of workers Python worker processes. Each
// is started with fds (fds[3] is replaced by the read end of a pipe the
// engine fills with blob, the base64 of the worker's spawn data) and env
// plus MPGO_POOL_WORKER, which holds the worker's AttachWorker arguments
// and a serial number: forked by the zygote on zygoteFD (a socket PoolNew
// takes over) if it is not -1, else as a fresh interpreter run as argv.
// If the zygote dies, the workers that follow are fresh interpreters.
// Workers die with this process.
func PoolNew(workers, maxTasks int, argvJSON, fdsJSON, envJSON, blob64 string, zygoteFD int) (h int64, err error) {
	defer guard(&err)
	pp := &pyPool{}
	if zygoteFD >= 0 {
		pp.zygote = process.NewZygote(zygoteFD)
	}
	defer func() {
		if err != nil {
			pp.dropZygote(pp.zygote)
		}
	}()
	var argv, env []string
	var fds []int
	if json.Unmarshal([]byte(argvJSON), &argv) != nil || len(argv) == 0 ||
		json.Unmarshal([]byte(fdsJSON), &fds) != nil || len(fds) < 4 ||
		json.Unmarshal([]byte(envJSON), &env) != nil {
		return 0, wrap(fmt.Errorf("pool: bad argv, fds or env: %w", errs.ErrValue))
	}
	blob, err := base64.StdEncoding.DecodeString(blob64)
	if err != nil {
		return 0, wrap(fmt.Errorf("pool: spawn data: %w: %w", err, errs.ErrValue))
	}
	spawn := func(slot int, args []string) (*process.Process, error) {
		pp.mu.Lock()
		pp.serial++
		serial := pp.serial
		z := pp.zygote
		pp.mu.Unlock()
		var pfd [2]int
		if err := unix.Pipe2(pfd[:], unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("pool: pipe: %w", err)
		}
		files := append([]int(nil), fds...)
		files[3] = pfd[0]
		cenv := append(append([]string(nil), env...),
			"MPGO_POOL_WORKER="+strings.Join(args, " ")+" "+strconv.Itoa(serial))
		var proc *process.Process
		var err error
		if z != nil {
			proc, err = z.Start(process.Attr{Env: cenv, Files: files, DeathSignal: syscall.SIGKILL})
			if errors.Is(err, errs.ErrClosed) {
				pp.dropZygote(z)
				z = nil
			}
		}
		if z == nil {
			proc, err = process.Start(process.Attr{Argv: argv, Env: cenv, Files: files, DeathSignal: syscall.SIGKILL})
		}
		unix.Close(pfd[0])
		if err != nil {
			unix.Close(pfd[1])
			return nil, err
		}
		go func() {
			// A worker that dies before reading it all makes the write
			// fail: its death is settled by the pool.
			f := os.NewFile(uintptr(pfd[1]), "pool-spawn-data")
			f.Write(blob)
			f.Close()
		}()
		return proc, nil
	}
	p, err := pool.New(pool.Options{Workers: workers, MaxTasksPerWorker: maxTasks, Spawn: spawn, External: true})
	if err != nil {
		return 0, wrap(err)
	}
	pp.p = p
	pp.tasks = handles.Queues.Put(p.Tasks())
	pp.results = handles.Queues.Put(p.Results())
	h = handles.Pools.Put(p)
	pyPools.Store(h, pp)
	return h, nil
}

// dropZygote stops using z (gone, or the pool is freed) and closes it.
func (pp *pyPool) dropZygote(z *process.Zygote) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if z != nil && pp.zygote == z {
		pp.zygote = nil
		z.Close()
	}
}

func getPyPool(h int64) (*pyPool, error) {
	v, ok := pyPools.Load(h)
	if !ok {
		return nil, fmt.Errorf("pool: no pool with handle %d: %w", h, errs.ErrValue)
	}
	return v.(*pyPool), nil
}

// PoolTasks returns the queue handle of the pool's task queue. The pool
// owns it: it is released by PoolFree, not QueueClose.
func PoolTasks(h int64) (q int64, err error) {
	defer guard(&err)
	pp, err := getPyPool(h)
	if err != nil {
		return 0, wrap(err)
	}
	return pp.tasks, nil
}

// PoolResults returns the queue handle of the pool's result queue, owned
// by the pool as PoolTasks' is.
func PoolResults(h int64) (q int64, err error) {
	defer guard(&err)
	pp, err := getPyPool(h)
	if err != nil {
		return 0, wrap(err)
	}
	return pp.results, nil
}

// PoolPids returns the JSON list of the workers' pids by slot (0: a slot
// whose worker is being replaced).
func PoolPids(h int64) (pids string, err error) {
	defer guard(&err)
	pp, err := getPyPool(h)
	if err != nil {
		return "", wrap(err)
	}
	b, _ := json.Marshal(pp.p.Pids())
	return string(b), nil
}

// PoolShutdown stops the pool once the queued tasks are done, without
// waiting; StatusClosed follows the last result.
func PoolShutdown(h int64) (err error) {
	defer guard(&err)
	pp, err := getPyPool(h)
	if err != nil {
		return wrap(err)
	}
	pp.p.Shutdown()
	return nil
}

// PoolTerminate kills the workers and returns once they are reaped.
func PoolTerminate(h int64) (err error) {
	defer guard(&err)
	pp, err := getPyPool(h)
	if err != nil {
		return wrap(err)
	}
	return wrap(pp.p.Terminate())
}

// PoolFree releases a stopped pool (it terminates it first if need be).
func PoolFree(h int64) (err error) {
	defer guard(&err)
	pp, err := getPyPool(h)
	if err != nil {
		return wrap(err)
	}
	pyPools.Delete(h)
	handles.Pools.Take(h)
	handles.Queues.Take(pp.tasks)
	handles.Queues.Take(pp.results)
	pp.p.Terminate()
	pp.dropZygote(pp.zygote)
	return wrap(pp.p.Free())
}

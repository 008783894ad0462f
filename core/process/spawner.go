package process

import (
	"runtime"
	"sync"
	"syscall"
)

// PR_SET_PDEATHSIG fires when the *thread* that created the child exits, not
// when the process does. Go code in a c-shared library runs on whatever
// foreign thread called it (a Python thread, say), and that thread may end
// long before the process, taking every child it forked with it. So children
// with a death signal are forked from one goroutine locked, for the life of
// the process, to a thread the Go runtime created and never retires.

type spawnRequest struct {
	path string
	argv []string
	attr *syscall.ProcAttr
	done chan<- spawnResult
}

type spawnResult struct {
	pid int
	err error
}

var (
	spawnerOnce sync.Once
	spawnerReqs chan spawnRequest
)

// forkExecOnSpawner runs syscall.ForkExec on the spawner thread.
func forkExecOnSpawner(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	spawnerOnce.Do(func() {
		spawnerReqs = make(chan spawnRequest)
		go spawner(spawnerReqs)
	})
	done := make(chan spawnResult, 1)
	spawnerReqs <- spawnRequest{path: path, argv: argv, attr: attr, done: done}
	r := <-done
	return r.pid, r.err
}

// spawner serves fork requests forever. It never unlocks its thread and
// never returns: either would let the thread exit and kill the children.
func spawner(reqs <-chan spawnRequest) {
	runtime.LockOSThread()
	for r := range reqs {
		pid, err := syscall.ForkExec(r.path, r.argv, r.attr)
		r.done <- spawnResult{pid: pid, err: err}
	}
}

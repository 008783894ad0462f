package pool

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
)

// WorkerLostError reports a task whose worker died while running it (or, in
// a narrow window, right after taking it from the queue). It wraps
// errs.ErrProcess.
type WorkerLostError struct {
	Pid    int    // the worker's pid
	Status int    // its exit status: n for exit(n), -s for death by signal s
	Task   uint64 // the id of the task it took
}

func (e *WorkerLostError) Error() string {
	how := fmt.Sprintf("exited with status %d", e.Status)
	if e.Status < 0 {
		how = "killed by " + signalName(-e.Status)
	}
	return fmt.Sprintf("pool: worker %d lost running task %d: %s", e.Pid, e.Task, how)
}

// Unwrap returns errs.ErrProcess.
func (e *WorkerLostError) Unwrap() error { return errs.ErrProcess }

func signalName(sig int) string {
	if name := unix.SignalName(unix.Signal(sig)); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", sig)
}

// TaskError is the error a task's function returned, or the panic it raised,
// carried back from the worker as text. It wraps no sentinel: the failure is
// the function's, not the pool's.
type TaskError struct {
	Name    string // the registered name of the function
	Message string // the error's text, or the panic value and stack
	Panic   bool   // the function panicked (the worker recovered)
}

func (e *TaskError) Error() string {
	if e.Panic {
		return fmt.Sprintf("pool: task %q panicked: %s", e.Name, e.Message)
	}
	return fmt.Sprintf("pool: task %q: %s", e.Name, e.Message)
}

package pybind

import (
	"encoding/json"
	"fmt"
	"syscall"
	"time"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/process"
	"github.com/mpgo/mpgo/internal/handles"
)

// NotDone is what ProcessWait returns while the child is still running.
const NotDone = process.StillRunning

// ProcessStart starts a child. argvJSON is a JSON list of strings, fdsJSON a
// JSON list of ints (fds[i] becomes the child's fd i), envJSON a JSON list of
// "K=V" strings or "" to inherit. deathSignal, if non-zero, is sent to the
// child when this process dies. It returns a handle.
func ProcessStart(argvJSON, fdsJSON, envJSON string, deathSignal int) (h int64, err error) {
	defer guard(&err)
	var a process.Attr
	if err := json.Unmarshal([]byte(argvJSON), &a.Argv); err != nil || len(a.Argv) == 0 {
		return 0, wrap(fmt.Errorf("argv must be a non-empty list of str: %w", errs.ErrValue))
	}
	if err := json.Unmarshal([]byte(fdsJSON), &a.Files); err != nil {
		return 0, wrap(fmt.Errorf("fds must be a list of int: %w", errs.ErrValue))
	}
	if envJSON != "" {
		if err := json.Unmarshal([]byte(envJSON), &a.Env); err != nil {
			return 0, wrap(fmt.Errorf("env must be a list of str: %w", errs.ErrValue))
		}
	}
	a.DeathSignal = syscall.Signal(deathSignal)
	p, err := process.Start(a)
	if err != nil {
		return 0, wrap(err)
	}
	return handles.Procs.Put(p), nil
}

// ProcessPid returns the pid of the child behind handle h.
func ProcessPid(h int64) (pid int, err error) {
	defer guard(&err)
	p, err := handles.Procs.Get(h)
	if err != nil {
		return 0, wrap(err)
	}
	return p.Pid, nil
}

// ProcessPidfd returns the child's pidfd, which becomes readable when the
// child exits. It stays owned by the engine until ProcessRelease.
func ProcessPidfd(h int64) (fd int, err error) {
	defer guard(&err)
	p, err := handles.Procs.Get(h)
	if err != nil {
		return 0, wrap(err)
	}
	return p.Pidfd(), nil
}

// ProcessWait waits up to timeout seconds (negative: forever) and returns
// the exit code (n, or -signal), or NotDone. Python calls it in slices of at
// most 0.1 s so that signal handlers run between slices.
func ProcessWait(h int64, timeout float64) (status int64, err error) {
	defer guard(&err)
	p, err := handles.Procs.Get(h)
	if err != nil {
		return 0, wrap(err)
	}
	d := time.Duration(timeout * float64(time.Second))
	if timeout < 0 {
		d = -1
	}
	st, done, err := p.Wait(d)
	if err != nil {
		return 0, wrap(err)
	}
	if !done {
		return NotDone, nil
	}
	return int64(st), nil
}

// ProcessSignal sends sig to the child; a child that has already exited is
// not an error, as with Popen.terminate.
func ProcessSignal(h int64, sig int) (err error) {
	defer guard(&err)
	p, err := handles.Procs.Get(h)
	if err != nil {
		return wrap(err)
	}
	return wrap(p.Signal(syscall.Signal(sig)))
}

// ProcessRelease forgets the child and closes its pidfd. It is idempotent.
func ProcessRelease(h int64) (err error) {
	defer guard(&err)
	if p, ok := handles.Procs.Take(h); ok {
		return wrap(p.Release())
	}
	return nil
}

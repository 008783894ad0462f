// Package pybind is the surface of the mpgo engine that gopy turns into the
// Python extension module mpgo._native._pybind.
//
// Only ints, floats, strings and handles cross this boundary: gopy copies
// slices one element at a time, so lists travel as JSON text and bulk bytes
// go through the C fast path instead. Every function returns an error whose
// text starts with a stable code ("E<code>:<errno>: message"), because gopy
// turns every Go error into RuntimeError; python/mpgo/_errors.py translates
// the code in one table. Every function recovers panics, since a Go panic
// would abort the interpreter.
package pybind

import (
	"fmt"
	"runtime/debug"

	"github.com/mpgo/mpgo/core/errs"
)

// Version reports the engine version.
func Version() string { return "0.1.0" }

// wrap turns err into the coded error text the Python side parses.
func wrap(err error) error {
	if err == nil {
		return nil
	}
	code, errno := errs.CodeOf(err)
	return fmt.Errorf("E%d:%d: %s", code, errno, err.Error())
}

// guard converts a panic into a coded internal error. Use as
// `defer guard(&err)` in every exported function.
func guard(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("E%d:0: %w: panic: %v\n%s", errs.CodeInternal, errs.ErrInternal, r, debug.Stack())
	}
}

// SelfTestPanic panics inside Go. Tests use it to prove that a Go panic
// reaches Python as an exception instead of aborting the interpreter.
func SelfTestPanic() (err error) {
	defer guard(&err)
	var m map[string]int
	m["boom"] = 1 // assignment to a nil map panics
	return nil
}

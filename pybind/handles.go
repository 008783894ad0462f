package pybind

import "github.com/mpgo/mpgo/internal/handles"

// LiveHandles reports how many engine objects are still held through
// handles (by Python or by C); tests use it to prove nothing leaks.
func LiveHandles() int { return handles.Live() }

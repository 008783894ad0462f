// Command pool cubes the numbers 0..999 on a pool of worker processes and
// prints their sum, showing the shape of a program that uses core/pool:
// functions are registered by name, and pool.Serve comes first in main so
// that the same binary, re-executed, serves as the workers.
package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/mpgo/mpgo/core/pool"
)

func init() {
	pool.Register("cube", cube)
}

// cube maps an 8-byte little-endian number to its cube.
func cube(b []byte) ([]byte, error) {
	if len(b) != 8 {
		return nil, fmt.Errorf("cube: payload of %d bytes, want 8", len(b))
	}
	x := binary.LittleEndian.Uint64(b)
	return binary.LittleEndian.AppendUint64(nil, x*x*x), nil
}

func main() {
	pool.Serve() // in a worker this runs the worker loop and never returns
	if err := run(os.Stdout, 1000); err != nil {
		fmt.Fprintln(os.Stderr, "pool:", err)
		os.Exit(1)
	}
}

// run cubes 0..n-1 on a pool and prints the sum of the cubes.
func run(w io.Writer, n int) error {
	p, err := pool.New(pool.Options{Workers: 4})
	if err != nil {
		return err
	}
	defer p.Terminate() // a no-op after Close; kills the workers on an early return
	payloads := make([][]byte, n)
	for i := range payloads {
		payloads[i] = binary.LittleEndian.AppendUint64(nil, uint64(i))
	}
	results, err := p.Map("cube", payloads)
	if err != nil {
		return err
	}
	var sum uint64
	for _, r := range results {
		sum += binary.LittleEndian.Uint64(r)
	}
	if err := p.Close(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "sum of cubes of 0..%d: %d\n", n-1, sum)
	return err
}

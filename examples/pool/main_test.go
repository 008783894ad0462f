package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mpgo/mpgo/core/pool"
)

// TestMain lets the test binary serve as the pool's workers, as the program
// itself does.
func TestMain(m *testing.M) {
	pool.Serve()
	os.Exit(m.Run())
}

func TestRun(t *testing.T) {
	var out strings.Builder
	if err := run(&out, 1000); err != nil {
		t.Fatal(err)
	}
	// The sum of the first n cubes is (n(n-1)/2)^2.
	want := fmt.Sprintf("sum of cubes of 0..999: %d\n", (999*1000/2)*(999*1000/2))
	if out.String() != want {
		t.Fatalf("run printed %q, want %q", out.String(), want)
	}
}

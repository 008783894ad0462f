package main

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/mpgo/mpgo/core/process"
)

// TestMain lets the test binary play the child, as the program itself does.
func TestMain(m *testing.M) {
	if process.Role() == roleChild {
		os.Exit(child(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func TestRun(t *testing.T) {
	for _, code := range []int{0, 7} {
		var out strings.Builder
		if err := run(&out, code); err != nil {
			t.Fatal(err)
		}
		want := regexp.MustCompile(`^child [1-9][0-9]* exited with status ` + strconv.Itoa(code) + "\n$")
		if !want.MatchString(out.String()) {
			t.Errorf("run(%d) printed %q", code, out.String())
		}
	}
}

// Command spawn shows core/process: it re-executes itself as a child in the
// "child" role, the child exits with a chosen code, and the parent prints the
// child's pid and exit status.
//
//	go run ./examples/spawn -code 7
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"github.com/mpgo/mpgo/core/process"
)

// roleChild is the role the program plays when it re-executes itself.
const roleChild = "child"

func main() {
	if process.Role() == roleChild {
		os.Exit(child(os.Args[1:]))
	}
	code := flag.Int("code", 7, "exit code the child returns")
	flag.Parse()
	if err := run(os.Stdout, *code); err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(1)
	}
}

// child is the child's main: it exits with the code it is given.
func child(args []string) int {
	code, err := strconv.Atoi(args[0])
	if err != nil {
		return 2
	}
	return code
}

// run starts a child that exits with code and reports how it ended.
func run(w io.Writer, code int) error {
	// DeathSignal: the child dies with us even if we are SIGKILLed.
	p, err := process.Reexec(roleChild, []string{strconv.Itoa(code)},
		process.Attr{DeathSignal: syscall.SIGKILL})
	if err != nil {
		return err
	}
	defer p.Release()
	status, _, err := p.Wait(-1)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "child %d exited with status %d\n", p.Pid, status)
	return err
}

// Command queue produces or consumes raw byte messages on an mpgo queue that
// another process (Python, C or Go) created. It shows how non-Python peers
// use mpgo queues: a message is an opaque byte string. Python's Queue.put
// and get pickle; Queue.put_bytes and get_bytes move raw bytes, which is
// what a Go or C peer reads and writes.
//
// usage:
//
//	queue -ref PID:FD:SIZE -mode produce -id ID -n N   puts "ID:0" .. "ID:N-1"
//	queue -ref PID:FD:SIZE -mode consume -n N          gets N messages "ID:SEQ"
//	                                                    and checks each ID's
//	                                                    SEQs arrive in order
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strconv"

	"github.com/mpgo/mpgo/core/queue"
	"github.com/mpgo/mpgo/core/shm"
)

func main() {
	ref := flag.String("ref", "", "queue reference pid:fd:size")
	mode := flag.String("mode", "produce", "produce or consume")
	id := flag.Int("id", 0, "producer id")
	n := flag.Int("n", 1000, "messages")
	flag.Parse()
	if err := run(*ref, *mode, *id, *n); err != nil {
		fmt.Fprintln(os.Stderr, "queue:", err)
		os.Exit(1)
	}
}

func run(ref, mode string, id, n int) error {
	r, err := shm.ParseRef(ref)
	if err != nil {
		return err
	}
	q, err := queue.Attach(r)
	if err != nil {
		return err
	}
	defer q.Close()
	switch mode {
	case "produce":
		buf := make([]byte, 0, 32)
		for i := range n {
			buf = strconv.AppendInt(append(strconv.AppendInt(buf[:0], int64(id), 10), ':'), int64(i), 10)
			if err := q.Put(buf, -1); err != nil {
				return err
			}
		}
		fmt.Println("produced", n)
	case "consume":
		next := map[int]int{}
		buf := make([]byte, 64)
		for range n {
			k, err := q.Get(buf, -1)
			if err != nil {
				return err
			}
			pid, seq, err := parse(buf[:k])
			if err != nil {
				return err
			}
			if seq != next[pid] {
				return fmt.Errorf("producer %d: got %d, want %d", pid, seq, next[pid])
			}
			next[pid]++
		}
		fmt.Println("consumed", n, "from", len(next), "producers")
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	return nil
}

func parse(m []byte) (id, seq int, err error) {
	i := bytes.IndexByte(m, ':')
	if i < 0 {
		return 0, 0, fmt.Errorf("bad message %q", m)
	}
	if id, err = strconv.Atoi(string(m[:i])); err != nil {
		return 0, 0, err
	}
	seq, err = strconv.Atoi(string(m[i+1:]))
	return id, seq, err
}

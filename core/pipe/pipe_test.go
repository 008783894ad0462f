package pipe_test

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/mpgo/mpgo/core/errs"
	"github.com/mpgo/mpgo/core/pipe"
	"github.com/mpgo/mpgo/core/shm"
)

func TestPingPong(t *testing.T) {
	a, b, err := pipe.New()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 8)
		for range 1000 {
			m, err := b.Recv(buf, -1)
			if err != nil {
				t.Error(err)
				return
			}
			if err := b.Send(m); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	buf := make([]byte, 4)
	for i := range 1000 {
		msg := bytes.Repeat([]byte{byte(i)}, i%20) // some bigger than buf
		if err := a.Send(msg); err != nil {
			t.Fatal(err)
		}
		got, err := a.Recv(buf, -1)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("round %d: %q, %v", i, got, err)
		}
	}
	wg.Wait()
	if a.Poll() || b.Poll() {
		t.Fatal("messages left over")
	}
}

func TestAttachAndOneWayEnds(t *testing.T) {
	a, b, err := pipe.New()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	in, _ := b.Refs()
	reader, err := pipe.Attach(in, shm.Ref{})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if err := a.Send([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	if got, err := reader.Recv(nil, 0); err != nil || string(got) != "hi" {
		t.Fatalf("Recv = %q, %v", got, err)
	}
	if err := reader.Send([]byte("x")); !errors.Is(err, errs.ErrValue) {
		t.Fatalf("Send on a receive-only end: %v", err)
	}
	if _, err := reader.Recv(nil, 0); !errors.Is(err, errs.ErrEmpty) {
		t.Fatalf("Recv on empty: %v", err)
	}
}

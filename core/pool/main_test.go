package pool_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mpgo/mpgo/core/pool"
)

// The functions the test binary runs as a pool worker.
func init() {
	pool.Register("square", func(b []byte) ([]byte, error) {
		if len(b) != 8 {
			return nil, fmt.Errorf("payload of %d bytes", len(b))
		}
		x := binary.LittleEndian.Uint64(b)
		return binary.LittleEndian.AppendUint64(nil, x*x), nil
	})
	// echo returns its payload, or fails on payloads that start with "fail".
	pool.Register("echo", func(b []byte) ([]byte, error) {
		if strings.HasPrefix(string(b), "fail") {
			return nil, errors.New("refused " + string(b))
		}
		return b, nil
	})
	pool.Register("panic", func(b []byte) ([]byte, error) {
		if string(b) == "boom" {
			panic("boom")
		}
		return b, nil
	})
	pool.Register("pid", func([]byte) ([]byte, error) {
		return strconv.AppendInt(nil, int64(os.Getpid()), 10), nil
	})
	// block returns its payload, except "block:PATH": then it writes its
	// pid to PATH and sleeps until killed (bounded, in case a test leaks it).
	pool.Register("block", func(b []byte) ([]byte, error) {
		path, ok := strings.CutPrefix(string(b), "block:")
		if !ok {
			return b, nil
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, strconv.AppendInt(nil, int64(os.Getpid()), 10), 0o600); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, err
		}
		time.Sleep(time.Minute)
		return nil, errors.New("not killed")
	})
}

// TestMain lets the test binary serve as the pool's worker.
func TestMain(m *testing.M) {
	pool.Serve()
	os.Exit(m.Run())
}

// newPool starts a pool that is terminated when the test ends, which kills
// and reaps every worker.
func newPool(t *testing.T, opts pool.Options) *pool.Pool {
	t.Helper()
	p, err := pool.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Terminate() })
	return p
}

// waitMarker waits for a "block" task to write its pid to path.
func waitMarker(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil {
			pid, err := strconv.Atoi(string(b))
			if err != nil {
				t.Fatalf("marker %q: %v", b, err)
			}
			return pid
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no worker picked up the blocking task")
	return 0
}

func markerPath(t *testing.T, name string) string {
	return filepath.Join(t.TempDir(), name)
}

// Package shm provides shared memory for mpgo: segments, which are memfd
// files mapped MAP_SHARED, and arenas, allocators whose state lives inside a
// segment so that every attached process can allocate and free.
//
// Nothing ever appears in /dev/shm: the kernel frees a segment's memory when
// its last mapping and descriptor go, even if every process was SIGKILLed.
// A segment is named by a Ref (pid, fd, size); another process of the same
// user attaches by opening /proc/<pid>/fd/<fd>. Since any holder can hand
// out its own Ref, an object can be passed on at any time, not only at spawn.
package shm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mpgo/mpgo/core/errs"
)

// Ref names a segment held by a live process: the holder's pid, the holder's
// descriptor for the memfd, and the size of the mapping.
type Ref struct {
	Pid, FD int
	Size    int64
}

// String returns r in the text form "pid:fd:size" that crosses languages.
func (r Ref) String() string {
	return fmt.Sprintf("%d:%d:%d", r.Pid, r.FD, r.Size)
}

// ParseRef parses the text form written by Ref.String.
func ParseRef(s string) (Ref, error) {
	f := strings.Split(s, ":")
	if len(f) != 3 {
		return Ref{}, fmt.Errorf("shm: parse ref %q: %w", s, errs.ErrValue)
	}
	var n [3]int64
	for i, x := range f {
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil || v < 0 {
			return Ref{}, fmt.Errorf("shm: parse ref %q: %w", s, errs.ErrValue)
		}
		n[i] = v
	}
	if n[0] > 1<<31-1 || n[1] > 1<<31-1 {
		return Ref{}, fmt.Errorf("shm: parse ref %q: %w", s, errs.ErrValue)
	}
	return Ref{Pid: int(n[0]), FD: int(n[1]), Size: n[2]}, nil
}

// Segment is a shared memory mapping of a memfd. Its methods are safe for
// concurrent use; Bytes must not be used after Close.
type Segment struct {
	mu   sync.Mutex
	fd   int
	data []byte
}

var raiseOnce sync.Once

// raiseFileLimit lifts the soft RLIMIT_NOFILE to the hard limit: every
// segment a process holds costs a descriptor.
func raiseFileLimit() {
	raiseOnce.Do(func() {
		var r unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
			r.Cur = r.Max
			_ = unix.Setrlimit(unix.RLIMIT_NOFILE, &r)
		}
	})
}

// Create makes a zero-filled segment of size bytes. name only labels the
// memfd (it shows in /proc/<pid>/fd) and need not be unique.
func Create(name string, size int) (*Segment, error) {
	if size <= 0 {
		return nil, fmt.Errorf("shm: create %q: size %d: %w", name, size, errs.ErrValue)
	}
	raiseFileLimit()
	if name == "" {
		name = "mpgo"
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create %q: %w", name, err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: ftruncate %q to %d: %w", name, size, err)
	}
	return mapFD(fd, size)
}

// Attach maps the segment that ref names. The error wraps errs.ErrClosed if
// the holder process or its descriptor is gone, and the errno otherwise.
// ref.Size 0 maps the whole file.
func Attach(ref Ref) (*Segment, error) {
	if ref.Pid <= 0 || ref.FD < 0 || ref.Size < 0 {
		return nil, fmt.Errorf("shm: attach %v: %w", ref, errs.ErrValue)
	}
	raiseFileLimit()
	path := fmt.Sprintf("/proc/%d/fd/%d", ref.Pid, ref.FD)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("shm: attach %v: holder gone: %w", ref, errs.ErrClosed)
		}
		return nil, fmt.Errorf("shm: attach %v: %w", ref, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: attach %v: %w", ref, err)
	}
	size := ref.Size
	if size == 0 {
		size = st.Size
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || size == 0 || size > st.Size || size != int64(int(size)) {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: attach %v: file of %d bytes: %w", ref, st.Size, errs.ErrValue)
	}
	return mapFD(fd, int(size))
}

// mapFD maps size bytes of fd and takes ownership of fd.
func mapFD(fd, size int) (*Segment, error) {
	data, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: mmap %d bytes: %w", size, err)
	}
	return &Segment{fd: fd, data: data}, nil
}

// Ref returns the name of s as held by this process: its pid and its own
// descriptor. It is valid for as long as this process keeps s open.
func (s *Segment) Ref() Ref {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Ref{Pid: os.Getpid(), FD: s.fd, Size: int64(len(s.data))}
}

// Bytes returns the mapping, or nil after Close. Its address is page aligned.
func (s *Segment) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// FD returns the memfd descriptor, or -1 after Close.
func (s *Segment) FD() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fd
}

// Close unmaps s and closes its descriptor. Later calls do nothing. The
// memory itself lives on while any other process holds the segment.
func (s *Segment) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data == nil {
		return nil
	}
	err := unix.Munmap(s.data)
	if cerr := unix.Close(s.fd); err == nil {
		err = cerr
	}
	s.data, s.fd = nil, -1
	if err != nil {
		return fmt.Errorf("shm: close: %w", err)
	}
	return nil
}

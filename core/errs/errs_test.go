package errs_test

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/mpgo/mpgo/core/errs"
)

func TestCodeOf(t *testing.T) {
	cases := []struct {
		err   error
		code  errs.Code
		errno int
	}{
		{nil, errs.OK, 0},
		{errs.ErrEmpty, errs.CodeEmpty, 0},
		{fmt.Errorf("queue: get: %w", errs.ErrFull), errs.CodeFull, 0},
		{fmt.Errorf("wait: %w", errs.ErrTimeout), errs.CodeTimeout, 0},
		{fmt.Errorf("attach: %w", syscall.ENOENT), errs.CodeOS, int(syscall.ENOENT)},
		{fmt.Errorf("x: %w", errs.ErrTooMany), errs.CodeTooMany, 0},
		{errors.New("something else"), errs.CodeInternal, 0},
	}
	for _, c := range cases {
		code, errno := errs.CodeOf(c.err)
		if code != c.code || errno != c.errno {
			t.Errorf("CodeOf(%v) = %d, %d; want %d, %d", c.err, code, errno, c.code, c.errno)
		}
	}
}

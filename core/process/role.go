package process

import (
	"fmt"
	"os"
	"strings"

	"github.com/mpgo/mpgo/core/errs"
)

// RoleEnv is the environment variable that tells a re-executed Go program
// which role to play.
const RoleEnv = "MPGO_ROLE"

// Role returns the role this process was started in by Reexec, or "" for a
// process that was not (the parent).
func Role() string {
	return os.Getenv(RoleEnv)
}

// Reexec starts a copy of the running executable in role, with args after
// argv[0]. It lets a Go program impersonate the other binaries it needs, as
// the standard library's tests do: main (or TestMain) switches on Role.
// a.Argv is ignored; any RoleEnv already in the environment is replaced, so
// a child can start children in other roles.
func Reexec(role string, args []string, a Attr) (*Process, error) {
	if role == "" {
		return nil, fmt.Errorf("process: reexec: empty role: %w", errs.ErrValue)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("process: reexec: %w", err)
	}
	env := a.Env
	if env == nil {
		env = os.Environ()
	}
	// syscall.Getenv keeps the first of duplicate keys, so appending alone
	// would leave a child in its parent's role.
	a.Env = make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, RoleEnv+"=") {
			a.Env = append(a.Env, kv)
		}
	}
	a.Env = append(a.Env, RoleEnv+"="+role)
	a.Argv = append([]string{exe}, args...)
	return Start(a)
}

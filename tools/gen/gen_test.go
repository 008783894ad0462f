package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestViewsFresh fails when a checked-in view differs from what the tables
// render (make generate rewrites them).
func TestViewsFresh(t *testing.T) {
	for _, v := range views {
		old, err := os.ReadFile(filepath.Join("..", "..", v.path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(old, v.render()) {
			t.Errorf("%s is stale: run make generate", v.path)
		}
	}
}

// TestCViewAgreesWithGo compiles a C program against the checked-in header
// (through mpgo.h, as C users include it), runs it, and compares every
// value the C compiler sees with Go's.
func TestCViewAgreesWithGo(t *testing.T) {
	cc, err := exec.LookPath(envOr("CC", "cc"))
	if err != nil {
		t.Fatalf("no C compiler: %v", err)
	}
	var src strings.Builder
	src.WriteString("#include <stdio.h>\n#include \"mpgo.h\"\nint main(void) {\n")
	want := map[string]int64{}
	for _, a := range sorted() {
		if !a.c {
			continue
		}
		for _, c := range a.items {
			n := cName(a, c)
			want[n] = cValue(a, c)
			fmt.Fprintf(&src, "\tprintf(\"%%s %%lld\\n\", \"%s\", (long long)(%s));\n", n, n)
		}
	}
	src.WriteString("\treturn 0;\n}\n")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "consts.c"), []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	inc, _ := filepath.Abs(filepath.Join("..", "..", "capi", "include"))
	bin := filepath.Join(dir, "consts")
	out, err := exec.Command(cc, "-Wall", "-Wextra", "-Werror", "-I", inc, "-o", bin, filepath.Join(dir, "consts.c")).CombinedOutput()
	if err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	out, err = exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if want[f[0]] != v {
			t.Errorf("C has %s = %d, Go %d", f[0], v, want[f[0]])
		}
		seen++
	}
	if seen != len(want) || seen == 0 {
		t.Errorf("C printed %d constants, Go has %d", seen, len(want))
	}
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

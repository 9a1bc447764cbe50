package reliability

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Item 6: the fuzz targets run for a bounded time in CI. `make test` ends
// with `make fuzz`, which runs every Fuzz function for FUZZTIME. This test
// checks that target without fuzzing the repository again:
//
//   - discovery: `make fuzz` with GO set to a stub that records its
//     arguments invokes `go test -run=^$ -fuzz=^F$ -fuzztime=FUZZTIME DIR`
//     exactly once for every fuzz target of the module (found with
//     go/parser: func FuzzX(*testing.F) in a _test.go file of a package
//     directory) and for nothing else;
//   - crashers: the Makefile's fuzz recipe run in a scratch module whose
//     target fails on some inputs fails, names the target, and leaves the
//     crashing input in testdata/fuzz/<target>/, where a plain `go test`
//     then replays it as a regression case.
func TestMakefileFuzzTarget(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make is needed to check the Makefile: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	makefile := filepath.Join(root, "Makefile")

	t.Run("every target once", func(t *testing.T) {
		want := fuzzTargets(t, root)
		if len(want) == 0 {
			t.Fatal("no fuzz targets found in the module")
		}
		dir := t.TempDir()
		log := filepath.Join(dir, "calls")
		stub := filepath.Join(dir, "go")
		script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + log + "\n"
		if err := os.WriteFile(stub, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := runMake(t, root, makefile, "fuzz", "GO="+stub, "FUZZTIME=7s")
		if err != nil {
			t.Fatalf("make fuzz with a stub go: %v\n%s", err, out)
		}
		raw, _ := os.ReadFile(log)
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			f := strings.Fields(line)
			if len(f) != 5 || f[0] != "test" || f[1] != "-run=^$" || !strings.HasPrefix(f[2], "-fuzz=^") || !strings.HasSuffix(f[2], "$") || f[3] != "-fuzztime=7s" {
				t.Errorf("unexpected invocation: go %s", line)
				continue
			}
			name := strings.TrimSuffix(strings.TrimPrefix(f[2], "-fuzz=^"), "$")
			got = append(got, filepath.Clean(f[4])+" "+name)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("make fuzz runs\n  %s\nthe module's fuzz targets are\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		t.Logf("item 6: make fuzz runs each of the %d fuzz targets once for FUZZTIME: %s", len(want), strings.Join(want, ", "))
	})

	t.Run("crashers land in testdata", func(t *testing.T) {
		start := time.Now()
		dir, out, err := fuzzCrash(t, makefile)
		if err == nil {
			t.Fatalf("make fuzz passed with a crashing target:\n%s", out)
		}
		crashers, _ := filepath.Glob(filepath.Join(dir, "testdata", "fuzz", "FuzzCrash", "*"))
		if len(crashers) == 0 {
			t.Fatalf("no crasher in testdata/fuzz/FuzzCrash; make output:\n%s", out)
		}
		// The crasher is now a regression case of the plain test run.
		cmd := exec.Command("go", "test", "-count=1", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=")
		plain, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(plain), "crash on") {
			t.Errorf("go test does not replay the crasher (err %v):\n%s", err, plain)
		}
		t.Logf("item 6: a crashing target fails make fuzz in %v and leaves %s, which go test replays",
			time.Since(start).Round(time.Millisecond), strings.TrimPrefix(crashers[0], dir+string(filepath.Separator)))
	})
}

// fuzzCrash runs the Makefile's fuzz target in a scratch module whose only
// fuzz target fails on any input of 3 bytes or more, and returns the
// module's directory and make's output and error.
func fuzzCrash(t *testing.T, makefile string) (dir, out string, err error) {
	t.Helper()
	dir = t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/crash\n\ngo 1.25\n",
		// (The declaration is assembled so that this file's own text
		// does not look like a fuzz target to the Makefile's grep.)
		"crash_test.go": "package crash\n\nimport \"testing\"\n\n" + "func Fuzz" + `Crash(f *testing.F) {
	f.Add("a")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) >= 3 {
			t.Fatalf("crash on %q", s)
		}
	})
}
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err = runMake(t, dir, makefile, "fuzz", "FUZZTIME=60s")
	return dir, out, err
}

// runMake runs make -f makefile -C dir with args, with a deadline.
func runMake(t *testing.T, dir, makefile string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctxT(t, 5*time.Minute), "make", append([]string{"--no-print-directory", "-f", makefile, "-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// fuzzTargets returns "./dir FuzzName" for every fuzz target of the module
// at root: func FuzzX(f *testing.F) in a _test.go file of a directory the
// go tool builds (not testdata, node_modules, or a name starting with '.'
// or '_'), sorted.
func fuzzTargets(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Fuzz") || len(fn.Type.Params.List) != 1 {
				continue
			}
			if star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr); ok {
				if sel, ok := star.X.(*ast.SelectorExpr); ok && sel.Sel.Name == "F" {
					rel, _ := filepath.Rel(root, filepath.Dir(path))
					out = append(out, filepath.Clean("./"+rel)+" "+fn.Name.Name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

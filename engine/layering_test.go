package engine

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sluice-stream/sluice"

// forbidden lists, for each package of the module, the module packages it
// must not import (ARCHITECTURE.md §3): the storage layers know nothing of
// the engine or of each other, the engine knows nothing of its commands,
// and the chaos harness is black-box.
var forbidden = map[string][]string{
	"wal":        {"engine", "state", "checkpoint", "recovery", "cmd", "chaos"},
	"state":      {"engine", "wal", "checkpoint", "recovery", "cmd", "chaos"},
	"checkpoint": {"engine", "wal", "state", "recovery", "cmd", "chaos"},
	"recovery":   {"engine", "wal", "state", "checkpoint", "cmd", "chaos"},
	"engine":     {"cmd", "chaos"},
	"chaos":      {"engine", "wal", "state", "checkpoint", "recovery"},
}

// TestLeavesAreLeaves keeps the exemptions below honest: engine/corpus
// and engine/rpc import nothing of Sluice.
func TestLeavesAreLeaves(t *testing.T) {
	for _, dir := range []string{"corpus", "rpc"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		if len(files) == 0 {
			t.Fatalf("no files in engine/%s", dir)
		}
		for _, name := range files {
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				if p, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(p, module) {
					t.Errorf("%s imports %s; engine/%s must stay a leaf", name, p, dir)
				}
			}
		}
	}
}

// TestForbiddenImports fails when a package imports a layer it must not,
// as pebble's TestForbiddenImports does. Test files count too, except the
// engine's own black-box tests of other layers, which there are none of.
func TestForbiddenImports(t *testing.T) {
	root := ".."
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		rules, ok := forbidden[top]
		if !ok {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			// The engine's sub-packages (engine/kafka) build on it, never
			// the other way round; engine/corpus and engine/rpc are
			// leaves that import nothing of Sluice, below the engine (the
			// benchmarks' corpus; the transport between nodes).
			if filepath.ToSlash(filepath.Dir(rel)) == "engine" && strings.HasPrefix(p, module+"/engine/") &&
				p != module+"/engine/corpus" && p != module+"/engine/rpc" {
				t.Errorf("%s imports %s: the engine must not import its sub-packages", rel, p)
			}
			for _, bad := range rules {
				if p == module+"/"+bad || strings.HasPrefix(p, module+"/"+bad+"/") {
					t.Errorf("%s imports %s: package %s must not import %s", rel, p, top, bad)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no Go files checked: is the test run from the engine directory?")
	}
}

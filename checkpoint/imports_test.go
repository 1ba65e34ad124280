package checkpoint

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestForbiddenImports keeps the package a leaf: the standard library,
// Pebble's vfs and msgpack, and nothing of this module, so that the engine
// and recovery can use it without a cycle.
func TestForbiddenImports(t *testing.T) {
	allowed := map[string]bool{
		"github.com/cockroachdb/pebble/v2/vfs": true,
		"github.com/vmihailenco/msgpack/v5":    true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if stdlib := !strings.Contains(strings.SplitN(path, "/", 2)[0], "."); !stdlib && !allowed[path] {
				t.Errorf("%s imports %s: the package may import only the standard library, %v", f, path, allowed)
			}
		}
	}
}

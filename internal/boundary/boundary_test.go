// Package boundary holds one test: broker is the only package that talks
// to RabbitMQ. Every other package may use amqp091-go's data types
// (Table, Publishing, Delivery's fields, Error) but may not call a method
// of *amqp.Channel or *amqp.Connection, nor acknowledge a Delivery
// itself (Delivery.Ack, Nack and Reject are channel calls in disguise).
package boundary

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const (
	module = "github.com/warrenq/warren"
	amqp   = "github.com/rabbitmq/amqp091-go"
)

// allowed are the packages that may call amqp091-go directly, and why.
var allowed = map[string]string{
	module + "/broker":         "the boundary itself",
	module + "/internal/bench": "bare.go is the bare amqp091-go baseline Warren is measured against",
}

// forbidden names, per amqp091-go type, the methods only broker may call.
// A nil set forbids every method of the type.
var forbidden = map[string]map[string]bool{
	"Channel":    nil,
	"Connection": nil,
	"Delivery":   {"Ack": true, "Nack": true, "Reject": true},
}

type listed struct {
	ImportPath string
	Dir        string
	Export     string
	GoFiles    []string
	Module     *struct{ Path string }
	Standard   bool
}

// TestOnlyBrokerCallsAMQP type-checks every package of the module (its
// non-test files, with and without the build tags the suite uses) and
// fails on each call of a forbidden amqp091-go method outside broker.
func TestOnlyBrokerCallsAMQP(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the whole module")
	}
	root := moduleRoot(t)
	var found []string
	for _, tags := range []string{"", "integration,chaos"} {
		pkgs := list(t, root, tags)
		exports := map[string]string{}
		for _, p := range pkgs {
			if p.Export != "" {
				exports[p.ImportPath] = p.Export
			}
		}
		fset := token.NewFileSet()
		imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
			f, ok := exports[path]
			if !ok {
				return nil, fmt.Errorf("no export data for %s", path)
			}
			return os.Open(f)
		})
		checked := 0
		for _, p := range pkgs {
			if p.Module == nil || p.Module.Path != module || allowed[p.ImportPath] != "" || len(p.GoFiles) == 0 {
				continue
			}
			found = append(found, check(t, fset, imp, root, p)...)
			checked++
		}
		if checked < 10 {
			t.Fatalf("tags %q: checked only %d packages; the listing is broken", tags, checked)
		}
	}
	sort.Strings(found)
	found = dedupe(found)
	for _, f := range found {
		t.Error(f)
	}
	if len(found) > 0 {
		t.Logf("%d calls outside broker; add what they need to broker instead", len(found))
	}
}

func check(t *testing.T, fset *token.FileSet, imp types.Importer, root string, p listed) []string {
	t.Helper()
	var files []*ast.File
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		files = append(files, f)
	}
	info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
	conf := types.Config{Importer: imp, Error: func(error) {}}
	if _, err := conf.Check(p.ImportPath, fset, files, info); err != nil {
		t.Fatalf("type-check %s: %v", p.ImportPath, err)
	}
	var out []string
	for sel, s := range info.Selections {
		if s.Kind() != types.MethodVal && s.Kind() != types.MethodExpr {
			continue
		}
		// The method's own receiver, not the selector's: a broker type
		// that embeds *amqp.Connection still calls amqp091-go.
		fn, ok := s.Obj().(*types.Func)
		if !ok {
			continue
		}
		name, ok := amqpType(fn.Type().(*types.Signature).Recv().Type())
		if !ok {
			continue
		}
		methods, listed := forbidden[name]
		if !listed || (methods != nil && !methods[sel.Sel.Name]) {
			continue
		}
		pos := fset.Position(sel.Sel.Pos())
		rel, _ := filepath.Rel(root, pos.Filename)
		out = append(out, fmt.Sprintf("%s:%d: calls (*amqp.%s).%s", rel, pos.Line, name, sel.Sel.Name))
	}
	return out
}

// amqpType reports the name of an amqp091-go named type, through pointers.
func amqpType(t types.Type) (string, bool) {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := t.(*types.Named)
	if !ok || n.Obj().Pkg() == nil || n.Obj().Pkg().Path() != amqp {
		return "", false
	}
	return n.Obj().Name(), true
}

func list(t *testing.T, root, tags string) []listed {
	t.Helper()
	args := []string{"list", "-export", "-deps", "-json=ImportPath,Dir,Export,GoFiles,Module,Standard"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, "./...")...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

func dedupe(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

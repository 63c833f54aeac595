package main

import (
	"bytes"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagsInGroups fails naming any flag that a file of this package
// registers on flag.CommandLine (flag.String, flag.Var, ...) instead of in
// a flagGroup: such a flag would be missing from --help's groups and from
// every run's provenance.
func TestFlagsInGroups(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, ok := sel.X.(*ast.Ident)
			if !ok || pkg.Name != "flag" || !registers(sel.Sel.Name) {
				return true
			}
			t.Errorf("%s: flag.%s(%s) registers a flag outside segeval's groups; register it in a flagGroup (flags.go)",
				fset.Position(call.Pos()), sel.Sel.Name, flagName(call, sel.Sel.Name))
			return true
		})
	}
}

// registers reports whether the flag package function defines a flag on
// flag.CommandLine.
func registers(fn string) bool {
	switch fn {
	case "Bool", "BoolVar", "BoolFunc", "Duration", "DurationVar", "Float64", "Float64Var", "Func",
		"Int", "Int64", "Int64Var", "IntVar", "String", "StringVar", "TextVar", "Uint", "Uint64", "Uint64Var", "UintVar", "Var":
		return true
	}
	return false
}

// flagName returns the name literal of a flag definition, or "?".
func flagName(call *ast.CallExpr, fn string) string {
	i := 0
	if strings.HasSuffix(fn, "Var") {
		i = 1 // the value comes first
	}
	if len(call.Args) > i {
		if lit, ok := call.Args[i].(*ast.BasicLit); ok {
			return lit.Value
		}
	}
	return "?"
}

// TestProvenanceFlags checks that provenance records every flag of the
// recorded groups, whatever its group, and none of the program's own.
func TestProvenanceFlags(t *testing.T) {
	got := recordFlags()
	for _, g := range flagGroups {
		g.VisitAll(func(f *flag.Flag) {
			if _, ok := got[f.Name]; ok != g.recorded {
				t.Errorf("--%s (%s) in provenance: %v, want %v", f.Name, g.title, ok, g.recorded)
			}
		})
	}
	for _, name := range []string{"input", "num_classes", "output", "baseline", "max_miou_drop", "max_rejected"} {
		if _, ok := got[name]; !ok {
			t.Errorf("provenance lacks --%s", name)
		}
	}
	if got["input"] != "testdata/sample/*.tar" {
		t.Errorf("provenance records --input=%q, want its default", got["input"])
	}
}

// TestUsage checks --help: every group in order, every one of segeval's
// flags with its default, then Beam's flags in a section of their own.
func TestUsage(t *testing.T) {
	var buf bytes.Buffer
	usage(&buf)
	own, runner, ok := strings.Cut(buf.String(), "\n"+runnerTitle+":\n")
	if !ok || !strings.HasPrefix(own, "Usage: segeval") {
		t.Fatalf("--help has no section %q or does not start with segeval:\n%s", runnerTitle, buf.String())
	}
	last := -1
	for _, g := range flagGroups {
		i := strings.Index(own, "\n"+g.title+":\n")
		if i < last {
			t.Errorf("group %q missing or out of order", g.title)
		}
		last = i
		g.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(own, "  -"+f.Name+" ") {
				t.Errorf("--help lacks -%s among segeval's flags", f.Name)
			}
		})
	}
	for _, want := range []string{"-input string (default testdata/sample/*.tar)", "-bootstrap int (default 200)",
		"-label_glob string (default unset)", "-max_miou_drop fraction (default unset)", "Beam's"} {
		if !strings.Contains(own, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	for _, beam := range []string{"  -runner ", "  -zone ", "  -disk_provisioned_iops "} {
		if strings.Contains(own, beam) || !strings.Contains(runner, beam) {
			t.Errorf("Beam's %q is not (only) in the runner section", beam)
		}
	}
}

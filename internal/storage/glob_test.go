package storage

import (
	"errors"
	"path"
	"testing"
)

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		pattern string
		name    string
		want    bool
	}{
		{"*.txt", "a.txt", true},
		{"*.txt", "dir/a.txt", false}, // '*' does not cross '/'
		{"*", "", true},
		{"*", "a/b", false},
		{"?.txt", "a.txt", true},
		{"?.txt", "ab.txt", false},
		{"a?b", "a/b", false}, // '?' does not match '/'
		{"[ab].txt", "b.txt", true},
		{"[ab].txt", "c.txt", false},
		{"[^ab].txt", "c.txt", true},
		{"[a-c]x", "bx", true},
		{`\*.txt`, "*.txt", true},
		{`\*.txt`, "a.txt", false},
		{"**", "a", true},
		{"**", "a/b/c", true},
		{"**/*.txt", "a.txt", true}, // "**" matches zero segments
		{"**/*.txt", "a/b/c.txt", true},
		{"**/*.txt", "a/b/c.csv", false},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"a/**/b", "b", false},
		{"a/**", "a/x/y", true},
		{"a/**/**/b", "a/b", true},
		{"a/**/x/**/b", "a/1/x/2/3/b", true},
		{"a/**/x/**/b", "a/1/y/2/3/b", false},
		{"a/*/c", "a/b/c", true},
		{"a/*/c", "a/b/b/c", false},
		{"a**b", "axxb", true}, // "**" inside a segment is just '*' twice
		{"a**b", "a/b", false},
		{"dir", "dir", true},
		{"dir", "dir/x", false},
		{"/abs/*.txt", "/abs/a.txt", true},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.pattern)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tt.pattern, err)
		}
		if got := g.match(tt.name); got != tt.want {
			t.Errorf("glob %q matching %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestGlobMayMatchUnder(t *testing.T) {
	tests := []struct {
		pattern string
		dir     string
		want    bool
	}{
		{"a/*.txt", "a", true},
		{"a/*.txt", "b", false},
		{"a/*.txt", "a/sub", false}, // files under a/sub have too many segments
		{"a/*/x.txt", "a/sub", true},
		{"a/**/x.txt", "a/sub/deeper", true},
		{"*/x.txt", "anything", true},
		{"[ab]/x.txt", "c", false},
		{"**", "any/where", true},
		{"/data/*/x", "/data", true},
		{"/data/*/x", "/other", false},
	}
	for _, tt := range tests {
		g, err := compileGlob(tt.pattern)
		if err != nil {
			t.Fatalf("compileGlob(%q): %v", tt.pattern, err)
		}
		if got := g.mayMatchUnder(tt.dir); got != tt.want {
			t.Errorf("glob %q mayMatchUnder(%q) = %v, want %v", tt.pattern, tt.dir, got, tt.want)
		}
	}
}

func TestCompileGlobRejectsMalformed(t *testing.T) {
	for _, pattern := range []string{"[a", "dir/[", `x\`, "a/[]/b", "ok/**/[z-"} {
		if _, err := compileGlob(pattern); !errors.Is(err, path.ErrBadPattern) {
			t.Errorf("compileGlob(%q) error = %v, want ErrBadPattern", pattern, err)
		}
	}
}

func TestLiteralPrefix(t *testing.T) {
	tests := []struct{ pattern, want string }{
		{"data/part-*.txt", "data/part-"},
		{"data/**/x", "data/"},
		{"a?", "a"},
		{"x/[ab]", "x/"},
		{`x/\*`, "x/"},
		{"*", ""},
		{"plain/name.txt", "plain/name.txt"},
	}
	for _, tt := range tests {
		if got := literalPrefix(tt.pattern); got != tt.want {
			t.Errorf("literalPrefix(%q) = %q, want %q", tt.pattern, got, tt.want)
		}
	}
}

package storage

import (
	"fmt"
	"path"
	"strings"
)

// globMeta holds the characters that make a pattern segment non-literal for
// path.Match; a backslash escapes the next character.
const globMeta = `*?[\`

// recursiveSegment is the pattern segment that matches any number of path
// segments.
const recursiveSegment = "**"

// glob is a compiled Match pattern: a slash-separated path whose segments
// are path.Match patterns or "**". Because every segment is matched on its
// own, '*', '?' and classes can never match a '/'.
type glob struct {
	segs []string
}

// compileGlob splits pattern into segments and checks that each is a valid
// path.Match pattern, so that a malformed pattern is reported even when no
// name is ever tested against it.
func compileGlob(pattern string) (*glob, error) {
	var segs []string
	for seg := range strings.SplitSeq(pattern, "/") {
		if seg == recursiveSegment {
			// "**/**" means the same as "**"; collapsing it keeps
			// matching linear in the number of "**" segments.
			if len(segs) > 0 && segs[len(segs)-1] == recursiveSegment {
				continue
			}
		} else if _, err := path.Match(seg, ""); err != nil {
			return nil, fmt.Errorf("segment %q: %w", seg, err)
		}
		segs = append(segs, seg)
	}
	return &glob{segs: segs}, nil
}

// match reports whether the slash-separated name matches the whole glob.
func (g *glob) match(name string) bool {
	return matchSegments(g.segs, strings.Split(name, "/"))
}

// matchSegments reports whether the name segments match the pattern
// segments.
func matchSegments(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == recursiveSegment {
			for skip := 0; skip <= len(name); skip++ {
				if matchSegments(pat[1:], name[skip:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		// The pattern was validated by compileGlob, so Match cannot fail.
		if ok, _ := path.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// mayMatchUnder reports whether some file below the directory dir could
// match the glob. A directory walk uses it to skip subtrees that cannot
// contain a match.
func (g *glob) mayMatchUnder(dir string) bool {
	pat := g.segs
	for seg := range strings.SplitSeq(dir, "/") {
		if len(pat) == 0 {
			return false
		}
		if pat[0] == recursiveSegment {
			return true
		}
		if ok, _ := path.Match(pat[0], seg); !ok {
			return false
		}
		pat = pat[1:]
	}
	// A file below dir adds at least one more segment.
	return len(pat) > 0
}

// literalPrefix returns the part of pattern before its first meta
// character: every name matching the pattern starts with it.
func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, globMeta); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

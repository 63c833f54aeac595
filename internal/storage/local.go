package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The local backend returns the errors of package os unwrapped where they
// already name the operation and the path (*fs.PathError, *os.LinkError),
// and wraps them otherwise.

func openLocal(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // not a nil *os.File in a non-nil interface
	}
	return f, nil
}

func readFileLocal(path string) ([]byte, error) {
	return os.ReadFile(path)
}

// writeFileLocal writes data to a temporary file next to path and renames it
// into place, so that readers never see a partially written file.
func writeFileLocal(path string, data []byte) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = fillAndRename(tmp, path, data)
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// fillAndRename writes data to tmp, makes it durable, and renames it to path.
// It always closes tmp.
func fillAndRename(tmp *os.File, path string, data []byte) error {
	_, err := tmp.Write(data)
	if err == nil {
		// CreateTemp makes files readable by the owner only; give the file
		// the permissions os.WriteFile would.
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		// Without Sync a crash could leave an empty file under the final
		// name after the rename below.
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// existsLocal reports whether a non-directory exists at path.
func existsLocal(path string) (bool, error) {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	}
	return !info.IsDir(), nil
}

func renameLocal(from, to string) error {
	// Check the source first so that a failed rename does not leave behind
	// the parent directories created for the destination.
	if _, err := os.Lstat(from); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	return os.Rename(from, to)
}

func deleteLocal(path string) error {
	return os.Remove(path)
}

// listLocal returns every file below the directory prefix.
func listLocal(prefix string) ([]Object, error) {
	objs, err := walkFiles(filepath.Clean(prefix), func(string) bool { return true }, nil)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	return objs, nil
}

// matchLocal walks from the deepest directory named literally by pattern
// and keeps the files that match it.
func matchLocal(pattern string) ([]Object, error) {
	// Clean the pattern the way walked paths are cleaned, so that "./a/*"
	// and "a//*" match "a/x". Cleaning does not touch meta characters.
	clean := filepath.Clean(pattern)
	g, err := compileGlob(clean)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", pattern, err)
	}
	root := "."
	if i := strings.LastIndex(literalPrefix(clean), "/"); i == 0 {
		root = "/"
	} else if i > 0 {
		root = clean[:i]
	}
	objs, err := walkFiles(root, g.match, g.mayMatchUnder)
	if err != nil {
		return nil, fmt.Errorf("match %s: %w", pattern, err)
	}
	return objs, nil
}

// walkFiles returns the files below the directory root, at any depth,
// whose paths satisfy keep, sorted by path. If descend is not nil, it
// decides which subdirectories are entered. Symbolic links to files are
// included; symbolic links to directories are not followed, which also
// rules out cycles. A root that does not exist or is not a directory yields
// no files.
func walkFiles(root string, keep, descend func(path string) bool) ([]Object, error) {
	info, err := os.Stat(root)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !info.IsDir() {
		return []Object{}, nil
	}
	if err != nil {
		return nil, err
	}
	// The trailing slash makes WalkDir enter root even when root itself is
	// a symbolic link to a directory; the paths it reports are still clean.
	walkRoot := root
	if !strings.HasSuffix(walkRoot, "/") {
		walkRoot += "/"
	}
	objs := []Object{}
	err = filepath.WalkDir(walkRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == walkRoot {
			return nil
		}
		if d.IsDir() {
			if descend != nil && !descend(path) {
				return filepath.SkipDir
			}
			return nil
		}
		if !keep(path) {
			return nil
		}
		info, err := os.Stat(path) // follows symbolic links
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a dangling link, or removed since listed
		}
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			objs = append(objs, Object{Path: path, Size: info.Size(), Generation: localGeneration(info)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortByPath(objs)
	return objs, nil
}

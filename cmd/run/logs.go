package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/pipeline"
)

// logFile is the name of the embedded runner's log in a local output folder.
const logFile = "segeval.log"

// A runnerLog is the file the embedded runner's logs go to instead of
// stderr: prism's job and bundle messages, and the plan dumps of a failed
// bundle, which bury the one line a user needs. It is created on the first
// line written, so that a quiet run leaves no file.
type runnerLog struct {
	path string

	mu  sync.Mutex
	f   *os.File
	err error
}

// hideRunnerLogs sends the process's logs (slog's default logger, which
// prism and Beam's SDK harness use) to a runnerLog: in the output folder
// when it is local, else in the temporary directory.
func hideRunnerLogs(cfg pipeline.Config) *runnerLog {
	l := &runnerLog{path: filepath.Join(os.TempDir(), "segeval-"+cfg.RunID+".log")}
	if !storage.IsGCS(cfg.Output) {
		l.path = filepath.Join(cfg.Output, logFile)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelWarn})))
	return l
}

func (l *runnerLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil && l.err == nil {
		if l.err = os.MkdirAll(filepath.Dir(l.path), 0o755); l.err == nil {
			l.f, l.err = os.Create(l.path)
		}
	}
	if l.err != nil {
		return os.Stderr.Write(p) // a log that cannot be written is shown
	}
	return l.f.Write(p)
}

// Written reports whether the log holds anything.
func (l *runnerLog) Written() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f != nil
}

// Path is where the log is.
func (l *runnerLog) Path() string { return l.path }

// Close closes the file, if any.
func (l *runnerLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/container/pool"
	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Environment variables that make the test binary serve a Beam worker pool
// instead of running tests (see TestMain and startWorkerPool).
const (
	poolPortEnv = "SEGEVAL_TEST_WORKER_POOL_PORT"
	poolBootEnv = "SEGEVAL_TEST_WORKER_POOL_BOOT"
	poolTmpEnv  = "SEGEVAL_TEST_WORKER_POOL_TMP"
)

// binDir holds the binaries built for the tests, removed when they end.
var binDir string

func TestMain(m *testing.M) {
	if port := os.Getenv(poolPortEnv); port != "" {
		os.Exit(serveWorkerPool(port, os.Getenv(poolBootEnv), os.Getenv(poolTmpEnv)))
	}
	dir, err := os.MkdirTemp("", "segeval-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// serveWorkerPool does what `boot --worker_pool` does, on the given port:
// boot hard-codes port 50000, which another test run on the machine may
// hold. Each worker is started, as there, by running the boot binary, which
// fetches the worker binary from the runner's artifact service and runs it.
//
// With tmp set, a bind mount puts tmp over /tmp first (the process runs in a
// mount namespace of its own): boot copies every worker binary to
// /tmp/bin*/worker and /tmp/staged and never removes them.
func serveWorkerPool(port, boot, tmp string) int {
	if tmp != "" {
		if err := syscall.Mount(tmp, "/tmp", "", syscall.MS_BIND, ""); err != nil {
			fmt.Fprintln(os.Stderr, "worker pool: private /tmp:", err)
			return 1
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker pool:", err)
		return 1
	}
	server, err := pool.New(context.Background(), p, boot)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker pool:", err)
		return 1
	}
	if err := server.ServeAndWait(); err != nil {
		fmt.Fprintln(os.Stderr, "worker pool:", err)
		return 1
	}
	return 0
}

// repoRoot is the module's root directory, where the CLI's defaults (the
// sample shards) are relative to.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// binaries are the programs the tests run.
type binaries struct {
	cli   string // cmd/run, static linux/amd64: also the worker binary
	prism string // Beam's portable job server
	boot  string // the Go SDK container's boot loader
}

var (
	buildOnce sync.Once
	built     binaries
	buildErr  error
)

// buildBinaries builds the binaries once per test binary. It skips the test
// in -short mode (a cold build takes minutes) and off linux/amd64, where the
// worker binary could not run locally.
func buildBinaries(t *testing.T) binaries {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the CLI, prism and boot; skipped in -short mode")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the worker binary is built for linux/amd64 and run locally")
	}
	root := repoRoot(t)
	buildOnce.Do(func() { built, buildErr = build(root) })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

// build compiles the three programs as a release would: static, for
// linux/amd64, without local paths.
func build(root string) (binaries, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return binaries{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-o", binDir+string(filepath.Separator),
		"./cmd/run", "github.com/apache/beam/sdks/v2/go/cmd/prism", "github.com/apache/beam/sdks/v2/go/container")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return binaries{}, fmt.Errorf("go build: %w\n%s", err, out)
	}
	b := binaries{
		cli:   filepath.Join(binDir, "segeval"),
		prism: filepath.Join(binDir, "prism"),
		boot:  filepath.Join(binDir, "boot"),
	}
	for from, to := range map[string]string{"run": b.cli, "container": b.boot} {
		if err := os.Rename(filepath.Join(binDir, from), to); err != nil {
			return binaries{}, err
		}
	}
	return b, nil
}

// result is how a CLI run ended.
type result struct {
	stdout, stderr string
	code           int
}

// runCLI runs the CLI binary in dir with the extra environment env, in a
// process group of its own that is killed when ctx ends or the run returns.
// os.TempDir of the CLI is a fresh test directory: loopback runs leave
// files there.
func runCLI(ctx context.Context, t *testing.T, cli, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "TMPDIR="+t.TempDir()), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // anything the run left behind
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("segeval %q: %v\nstdout:\n%s\nstderr:\n%s", args, ctx.Err(), r.stdout, r.stderr)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("segeval %q: %v", args, err)
	}
	return r
}

// server is a long-running process started by a test.
type server struct {
	name string
	log  string        // file with its stdout and stderr
	done chan struct{} // closed when it exits
}

// startServer starts cmd in a process group of its own, and kills the whole
// group (the process and whatever it started) when the test ends.
func startServer(t *testing.T, name string, cmd *exec.Cmd) *server {
	t.Helper()
	s := &server{name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(s.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, s.output())
		}
	})
	return s
}

func (s *server) output() string {
	data, _ := os.ReadFile(s.log)
	return string(data)
}

// waitListening waits until addr accepts connections.
func (s *server) waitListening(ctx context.Context, t *testing.T, addr string) {
	t.Helper()
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		select {
		case <-s.done:
			t.Fatalf("%s exited before listening on %s:\n%s", s.name, addr, s.output())
		case <-ctx.Done():
			t.Fatalf("%s not listening on %s: %v", s.name, addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// startWorkerPool starts the test binary as a worker pool (serveWorkerPool)
// on a free port, with env added to its environment: the workers inherit it.
// Where the system allows it (root), the pool gets a private /tmp.
func startWorkerPool(ctx context.Context, t *testing.T, boot string, env []string) (addr string, s *server) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir() // boot writes pipeline_options.json in its working directory
	if os.Geteuid() == 0 {
		// The pool sees tmp as /tmp, boot included.
		tmp := t.TempDir()
		if err := copyFile(boot, filepath.Join(tmp, "boot")); err != nil {
			t.Fatal(err)
		}
		boot = "/tmp/boot"
		cmd.Env = append(cmd.Env, poolTmpEnv+"="+tmp)
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	} else {
		t.Log("not root: boot's copies of the worker binary stay in /tmp")
	}
	cmd.Env = append(cmd.Env, poolPortEnv+"="+port, poolBootEnv+"="+boot)
	s = startServer(t, "worker pool", cmd)
	addr = "localhost:" + port
	s.waitListening(ctx, t, addr)
	return addr, s
}

// copyFile copies an executable.
func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o755)
}

// freePort returns a TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// fakeGCS starts an in-process GCS server with one bucket, and returns it
// with the environment that points clients (the CLI, Beam, the workers) to
// it.
func fakeGCS(t *testing.T, bucket string) (*fakestorage.Server, []string) {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: bucket})
	return srv, []string{"STORAGE_EMULATOR_HOST=" + srv.URL()}
}

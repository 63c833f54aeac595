package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gax "github.com/googleapis/gax-go/v2"

	"github.com/segeval/segeval/internal/httpfault"
)

// appendOnce returns a modify for Update that adds line to the file unless
// the file already holds it, the idempotent kind of modify Update asks for.
// calls, if not nil, records each call's view of the file.
func appendOnce(line string, calls *[]string) func([]byte, bool) ([]byte, bool, error) {
	return func(old []byte, exists bool) ([]byte, bool, error) {
		if calls != nil {
			*calls = append(*calls, fmt.Sprintf("%v:%q", exists, old))
		}
		if slices.Contains(strings.Split(string(old), "\n"), line) {
			return nil, false, nil
		}
		return append(slices.Clip(old), line+"\n"...), true, nil
	}
}

func TestUpdate(t *testing.T) {
	errModify := errors.New("modify refused")
	tests := []struct {
		name       string
		initial    *string // nil for no file
		data       string  // what modify returns
		write      bool
		err        error
		want       *string // content after the Update; nil for no file
		wantExists bool    // what modify is told
	}{
		{"creates a missing file", nil, "new", true, nil, ptr("new"), false},
		{"replaces an existing file", ptr("old"), "new", true, nil, ptr("new"), true},
		{"replaces with nothing", ptr("old"), "", true, nil, ptr(""), true},
		{"write=false leaves a file", ptr("old"), "ignored", false, nil, ptr("old"), true},
		{"write=false creates nothing", nil, "ignored", false, nil, nil, false},
		{"an error writes nothing", ptr("old"), "ignored", true, errModify, ptr("old"), true},
		{"an error creates nothing", nil, "ignored", true, errModify, nil, false},
		{"an empty file exists", ptr(""), "new", true, nil, ptr("new"), true},
	}
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			for i, tt := range tests {
				path := Join(b.root, fmt.Sprintf("case%d", i), "file")
				if tt.initial != nil {
					mustWrite(t, s, path, []byte(*tt.initial))
				}
				var before []Object
				if tt.initial != nil {
					before = mustList(t, s, path)
				}
				calls := 0
				err := s.Update(t.Context(), path, func(old []byte, exists bool) ([]byte, bool, error) {
					calls++
					if exists != tt.wantExists || tt.initial != nil && string(old) != *tt.initial || tt.initial == nil && old != nil {
						t.Errorf("%s: modify got %q, exists=%v", tt.name, old, exists)
					}
					return []byte(tt.data), tt.write, tt.err
				})
				if calls != 1 {
					t.Errorf("%s: modify called %d times, want once", tt.name, calls)
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("%s: error %v, want %v", tt.name, err, tt.err)
				}
				if err != nil && !strings.Contains(err.Error(), path) {
					t.Errorf("%s: error %q does not name the path", tt.name, err)
				}
				if tt.want == nil {
					mustExist(t, s, path, false)
					continue
				}
				mustRead(t, s, path, []byte(*tt.want))
				if !tt.write || tt.err != nil {
					// Not rewritten, not even with the same bytes.
					if after := mustList(t, s, path); after[0].Generation != before[0].Generation {
						t.Errorf("%s: generation %d became %d", tt.name, before[0].Generation, after[0].Generation)
					}
				}
			}
		})
	}
}

func ptr(s string) *string { return &s }

// mustList returns the one object List finds under the directory of path,
// which must be path.
func mustList(t *testing.T, s *Store, path string) []Object {
	t.Helper()
	dir := path[:strings.LastIndex(path, "/")]
	objs, err := s.List(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []Object
	for _, o := range objs {
		if !strings.HasSuffix(o.Path, lockSuffix) {
			files = append(files, o)
		}
	}
	if len(files) != 1 || files[0].Path != path {
		t.Fatalf("List(%s) = %+v, want only %s", dir, files, path)
	}
	return files
}

// Concurrent Updates lose no change on either backend: on Cloud Storage
// the generation condition makes the losers of a race redo their round,
// locally the lock serializes them.
func TestUpdateConcurrent(t *testing.T) {
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "counter", "lines")
			const writers = 8
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Go(func() {
					errs <- s.Update(t.Context(), path, appendOnce(fmt.Sprintf("writer %d", w), nil))
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			data, err := s.ReadFile(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
			slices.Sort(lines)
			var want []string
			for w := range writers {
				want = append(want, fmt.Sprintf("writer %d", w))
			}
			if !slices.Equal(lines, want) {
				t.Errorf("file holds %q, want %q", lines, want)
			}
		})
	}
}

// An Update whose write lands but whose response is lost succeeds once:
// the client's retry of the write fails its condition, the next round's
// modify sees its own change and writes nothing more.
func TestUpdateLostResponse(t *testing.T) {
	for _, cut := range []bool{false, true} {
		t.Run(map[bool]string{false: "503", true: "cut"}[cut], func(t *testing.T) {
			srv := startFakeGCS(t)
			const object = "lossy/lines"
			p := httpfault.NewLoseResponses(srv.HTTPHandler(), cut)
			front := httptest.NewServer(p) // loopback only
			t.Cleanup(front.Close)
			useEmulator(t, front.URL)
			s := newTestStore(t, Options{})
			path := "gs://" + testBucket + "/" + object

			for night, line := range []string{"first", "second"} {
				p.Arm(object)
				var calls []string
				if err := s.Update(t.Context(), path, appendOnce(line, &calls)); err != nil {
					t.Fatalf("night %d: %v", night, err)
				}
				if len(calls) < 2 {
					t.Errorf("night %d: modify saw %q; want a second round after the lost response", night, calls)
				}
			}
			if n := p.Lost(); n != 2 {
				t.Errorf("%d responses lost, want 2", n)
			}
			mustRead(t, s, path, []byte("first\nsecond\n"))
		})
	}
}

// An Update that keeps losing the race gives up after maxUpdateRounds
// rounds and says so.
func TestUpdateGivesUp(t *testing.T) {
	useEmulator(t, startFakeGCS(t).URL())
	defer func(b gax.Backoff) { updateBackoff = b }(updateBackoff)
	updateBackoff = gax.Backoff{Initial: time.Millisecond, Max: time.Millisecond, Multiplier: 1}
	s := newTestStore(t, Options{})
	path := "gs://" + testBucket + "/contended"
	rounds := 0
	err := s.Update(t.Context(), path, func(old []byte, _ bool) ([]byte, bool, error) {
		rounds++
		// Another writer gets in between every read and write.
		if err := s.WriteFile(t.Context(), path, fmt.Appendf(nil, "other %d", rounds)); err != nil {
			return nil, false, err
		}
		return []byte("mine"), true, nil
	})
	if err == nil || !strings.Contains(err.Error(), "conflicting") || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want one about conflicts naming the path", err)
	}
	if rounds != maxUpdateRounds {
		t.Errorf("%d rounds, want %d", rounds, maxUpdateRounds)
	}
	mustRead(t, s, path, fmt.Appendf(nil, "other %d", rounds))
}

// A local Update waits for the lock that another writer holds, and stops
// waiting when its context ends.
func TestUpdateLocalLock(t *testing.T) {
	s := newTestStore(t, Options{})
	path := t.TempDir() + "/dir/file"
	mustWrite(t, s, path, []byte("old"))
	unlock, err := lockLocal(t.Context(), path+lockSuffix)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err = s.Update(ctx, path, func([]byte, bool) ([]byte, bool, error) {
		t.Error("modify called while another writer holds the lock")
		return nil, false, nil
	})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want the deadline, naming the path", err)
	}

	done := make(chan error)
	go func() {
		done <- s.Update(t.Context(), path, func(old []byte, _ bool) ([]byte, bool, error) {
			return append(slices.Clip(old), " new"...), true, nil
		})
	}()
	time.Sleep(20 * time.Millisecond)
	mustRead(t, s, path, []byte("old")) // still waiting
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustRead(t, s, path, []byte("old new"))
}

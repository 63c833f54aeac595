package storage

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Concurrent appenders lose no line on either backend: on GCS the
// generation precondition makes the losers of a race redo their round.
func TestAppendLineConcurrent(t *testing.T) {
	for _, b := range testBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := newTestStore(t, Options{})
			path := Join(b.root, "model", "history.jsonl")
			const writers, each = 4, 5
			var wg sync.WaitGroup
			errs := make(chan error, writers*each)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						errs <- s.AppendLine(t.Context(), path, []byte(fmt.Sprintf("w%d-%d", w, i)))
					}
				}()
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
				for i := range each {
					want = append(want, fmt.Sprintf("w%d-%d", w, i))
				}
			}
			slices.Sort(want)
			if !slices.Equal(lines, want) {
				t.Errorf("history holds %d lines %v, want %d", len(lines), lines, len(want))
			}
		})
	}
}

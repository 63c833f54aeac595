package results

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestMergeParts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		file  string
		parts int
		rows  int
	}{
		{PerImageFile, 1, 10},
		{PerImageFile, 7, 500},
		{PerImageFile, 3, 0},
		{RejectedFile, 4, 100},
	} {
		t.Run(fmt.Sprintf("%s/%d parts/%d rows", tc.file, tc.parts, tc.rows), func(t *testing.T) {
			parts := make([][]string, tc.parts)
			var all []string
			for i := range tc.rows {
				var line string
				if tc.file == RejectedFile {
					line = fmt.Sprintf(`{"key":"k%03d","shard":"s%d.tar","reason":"r"}`, rng.IntN(50), i%5)
				} else {
					line = fmt.Sprintf(`{"run_id":"r","key":"img%05d","shard":"s.tar","miou":0.5}`, rng.IntN(100000))
				}
				p := rng.IntN(tc.parts)
				parts[p] = append(parts[p], line)
				all = append(all, line)
			}
			key := func(l string) string {
				k, err := SortKey(tc.file, []byte(l))
				if err != nil {
					t.Fatal(err)
				}
				return k
			}
			byKey := func(a, b string) int { return strings.Compare(key(a), key(b)) }
			var readers []io.Reader
			for _, p := range parts {
				slices.SortStableFunc(p, byKey)
				readers = append(readers, strings.NewReader(strings.Join(p, "\n")+"\n"))
			}
			var out bytes.Buffer
			n, err := MergeParts(&out, tc.file, readers)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if out.Len() == 0 {
				got = nil
			}
			if n != int64(tc.rows) || len(got) != tc.rows {
				t.Fatalf("merged %d lines (%d counted), want %d", len(got), n, tc.rows)
			}
			if !slices.IsSortedFunc(got, byKey) {
				t.Error("merged lines are not sorted")
			}
			slices.Sort(got)
			slices.Sort(all)
			if !slices.Equal(got, all) {
				t.Error("merged lines are not the parts' lines")
			}
		})
	}
}

func TestMergePartsMalformed(t *testing.T) {
	_, err := MergeParts(io.Discard, PerImageFile, []io.Reader{strings.NewReader("{\"key\":\"a\"}\nnot json\n")})
	if err == nil || !strings.Contains(err.Error(), "malformed line") {
		t.Errorf("got %v, want a malformed line named", err)
	}
}

package transforms

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestRangeLinesCutsEveryLineOnce cuts a file into ranges of every size
// and checks that the ranges' rows are the file's, each once, wherever the
// cuts fall (mid-line, on a newline, after it).
func TestRangeLinesCutsEveryLineOnce(t *testing.T) {
	var file bytes.Buffer
	var want []string
	for i := range 40 {
		line := fmt.Sprintf(`{"key":"k%02d","miou":0.%d}`, i, i*7)
		if i == 13 {
			file.WriteString("\n") // an empty line is skipped
		}
		file.WriteString(line + "\n")
		want = append(want, line)
	}
	data := file.Bytes()
	size := int64(len(data))
	for _, chunk := range []int64{1, 2, 7, 26, 27, 28, 100, size - 1, size, size + 5} {
		var got []string
		for off := int64(0); off < size; off += chunk {
			start := max(off-1, 0)
			err := rangeLines(bytes.NewReader(data[start:]), start, off, off+min(chunk, size-off), func(line []byte, at int64) error {
				if !bytes.HasPrefix(data[at:], line) || at > 0 && data[at-1] != '\n' {
					t.Fatalf("line %q reported at %d, not where it starts", line, at)
				}
				got = append(got, string(line))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("ranges of %d bytes gave %d lines, want the file's %d once each", chunk, len(got), len(want))
		}
	}
	// A last line without its newline is still read.
	var got []string
	rangeLines(strings.NewReader("a\nb"), 0, 0, 3, func(l []byte, _ int64) error { got = append(got, string(l)); return nil })
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("got %q", got)
	}
}

func TestParseRow(t *testing.T) {
	key, v, err := parseRow([]byte(`{"run_id":"r","key":"a/b","shard":"s","valid_pixels":3,"lovasz_softmax":0.25,"miou":null,"pixel_accuracy":1}`))
	if err != nil || key != "a/b" || v.Loss != 0.25 || !math.IsNaN(v.MIoU) {
		t.Errorf("%q %+v %v", key, v, err)
	}
	if _, v, _ := parseRow([]byte(`{"key":"h","lovasz_hinge":1.5,"miou":0.5}`)); v.Loss != 1.5 || v.MIoU != 0.5 {
		t.Errorf("hinge row %+v", v)
	}
	for _, bad := range []string{`{"miou":0.5}`, `{"key":`, `[1]`} {
		if _, _, err := parseRow([]byte(bad)); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

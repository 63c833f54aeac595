package results

import (
	"bufio"
	"bytes"
	"container/heap"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Part is one sorted piece of a JSONL output (per_image.jsonl or
// rejected.jsonl), written by one worker. The pieces are merged into the
// output file by MergeParts.
type Part struct {
	File  string // the output file it belongs to: PerImageFile or RejectedFile
	Path  string // where the piece is
	Lines int64
}

// SortKey returns the key a line of file is ordered by: per_image.jsonl by
// key then shard, rejected.jsonl by shard then key.
func SortKey(file string, line []byte) (string, error) {
	var v struct{ Key, Shard string }
	if err := json.Unmarshal(line, &v); err != nil {
		return "", fmt.Errorf("%s: malformed line %.80q: %w", file, line, err)
	}
	if file == RejectedFile {
		return v.Shard + "\x00" + v.Key, nil
	}
	return v.Key + "\x00" + v.Shard, nil
}

// MergeParts writes the lines of parts, each already sorted by
// SortKey(file, ...), to dst in one sorted stream, holding one line per part
// in memory: a merge of millions of rows costs a few buffers, not the rows.
func MergeParts(dst io.Writer, file string, parts []io.Reader) (lines int64, err error) {
	h := &lineHeap{}
	for i, p := range parts {
		c := &cursor{r: bufio.NewReaderSize(p, 64<<10), part: i}
		ok, err := c.next(file)
		if err != nil {
			return 0, err
		}
		if ok {
			heap.Push(h, c)
		}
	}
	w := bufio.NewWriterSize(dst, 256<<10)
	for h.Len() > 0 {
		c := (*h)[0]
		if _, err := w.Write(c.line); err != nil {
			return lines, err
		}
		lines++
		ok, err := c.next(file)
		if err != nil {
			return lines, err
		}
		if ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
		}
	}
	return lines, w.Flush()
}

// cursor is the current line of one part.
type cursor struct {
	r    *bufio.Reader
	part int
	line []byte // with its newline
	key  string
}

// next reads the part's next line; false at its end.
func (c *cursor) next(file string) (bool, error) {
	line, err := c.r.ReadBytes('\n')
	if err == io.EOF && len(line) == 0 {
		return false, nil
	}
	if err != nil && err != io.EOF {
		return false, err
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return c.next(file)
	}
	if line[len(line)-1] != '\n' {
		line = append(line, '\n')
	}
	key, err := SortKey(file, line)
	if err != nil {
		return false, err
	}
	c.line, c.key = line, key
	return true, nil
}

// lineHeap orders cursors by their line's key, then by part, so that equal
// keys come out in a fixed order.
type lineHeap []*cursor

func (h lineHeap) Len() int { return len(h) }
func (h lineHeap) Less(i, j int) bool {
	if c := strings.Compare(h[i].key, h[j].key); c != 0 {
		return c < 0
	}
	return h[i].part < h[j].part
}
func (h lineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *lineHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *lineHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

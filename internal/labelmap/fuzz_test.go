package labelmap

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzParse feeds arbitrary text to Parse. It must never panic, and a map it
// accepts must map each of its keys to the value the JSON gives it.
func FuzzParse(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", cityscapesFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"3": 1, "1": 0, "10": 255, "-5": 2}`))
	f.Add([]byte(`{"7": 0, "7": 1}`))
	f.Add([]byte(`{"-2147483648": 0, "2147483647": 1}`))
	f.Add([]byte(`{"7": 1.5, "8": "x"}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		var want map[string]int32
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("Parse accepted %q, which encoding/json rejects: %v", data, err)
		}
		for key, to := range want {
			from, err := strconv.ParseInt(key, 10, 32)
			if err != nil {
				t.Fatalf("Parse accepted key %q", key)
			}
			labels := []int32{int32(from)}
			if err := m.Apply(labels); err != nil || labels[0] != to {
				t.Fatalf("key %d maps to %d, %v; want %d", from, labels[0], err, to)
			}
		}
	})
}

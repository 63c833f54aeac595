package evaluate

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Missing is the slice value of images whose metadata lacks the field (or
// holds null there).
const Missing = "(missing)"

// sliceSep separates a slice key's field from its value; it cannot appear in
// JSON text.
const sliceSep = "\x1f"

// SliceKey names the slice of an image with metadata meta under a slicing
// by fields (crossed when several): fields and values joined by "+".
func SliceKey(fields []string, meta map[string]any) string {
	values := make([]string, len(fields))
	for i, f := range fields {
		values[i] = metaValue(meta[f])
	}
	return strings.Join(fields, "+") + sliceSep + strings.Join(values, "+")
}

// SplitSliceKey returns the field and value of a slice key.
func SplitSliceKey(key string) (field, value string) {
	field, value, _ = strings.Cut(key, sliceSep)
	return field, value
}

// metaValue renders a JSON metadata value as a slice value.
func metaValue(v any) string {
	switch v := v.(type) {
	case nil:
		return Missing
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return Missing
	}
	return string(data)
}

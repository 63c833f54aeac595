package main

import "testing"

// TestDtype names NumPy type strings.
func TestDtype(t *testing.T) {
	for descr, want := range map[string]string{"<f2": "float16 (<f2)", "|u1": "uint8 (|u1)", ">i4": "int32 (>i4)", "png": "png", "<c8": "<c8"} {
		if got := dtype(descr); got != want {
			t.Errorf("dtype(%q) = %q, want %q", descr, got, want)
		}
	}
}

package shard_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"log"
	"maps"
	"slices"
	"strings"

	"github.com/segeval/segeval/internal/shard"
)

// A shard is a tar archive in which consecutive members sharing a key (the
// base name up to its first dot) form one sample; the rest of the name is
// the field.
func ExampleNewReader() {
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	for _, m := range []struct{ name, body string }{
		{"val/frankfurt_000000.label.png", "label bytes"},
		{"val/frankfurt_000000.probs.npy", "prediction bytes"},
		{"val/lindau_000001.label.png", "label bytes"},
		{"val/lindau_000001.probs.npy", "prediction bytes"},
		{"val/lindau_000001.meta.json", `{"city":"lindau"}`},
	} {
		hdr := &tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.body)), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			log.Fatal(err)
		}
		if _, err := io.WriteString(tw, m.body); err != nil {
			log.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}

	r := shard.NewReader(&archive, "val-000000.tar", shard.Limits{MaxMemberBytes: 1 << 20})
	for {
		s, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fields := slices.Sorted(maps.Keys(s.Fields))
		fmt.Printf("%s at byte %d: %s\n", s.Key, s.Offset, strings.Join(fields, ", "))
		r.Release(s)
	}
	// Output:
	// val/frankfurt_000000 at byte 0: label.png, probs.npy
	// val/lindau_000001 at byte 2048: label.png, meta.json, probs.npy
}

// Errors name the shard and, when one is to blame, the member.
func ExampleNewReader_error() {
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	body := strings.Repeat("x", 4096)
	if err := tw.WriteHeader(&tar.Header{Name: "a.probs.npy", Mode: 0o644, Size: int64(len(body))}); err != nil {
		log.Fatal(err)
	}
	if _, err := io.WriteString(tw, body); err != nil {
		log.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}

	r := shard.NewReader(&archive, "train-000007.tar", shard.Limits{MaxMemberBytes: 1024})
	_, err := r.Next()
	fmt.Println(err)
	// Output:
	// shard train-000007.tar, member a.probs.npy: size 4096 bytes exceeds the limit of 1024
}

package sample

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"slices"

	"golang.org/x/image/webp"

	"github.com/segeval/segeval/internal/shard"
)

// The input image is the picture the model segmented, stored beside the
// label and prediction under WebDataset's usual names: KEY.jpg (or
// KEY.jpeg), KEY.png or KEY.webp. It is for people only: the report draws
// the worst images' labels, predictions and errors over it. Evaluation
// never decodes it, so it costs nothing but the bytes read, and a missing,
// corrupt or mismatched image never changes a metric or rejects a sample;
// [DecodeInputImage] reports a defect as an *Error naming the member, and
// the report shows that message in place of the picture.

// InputImageFields are the fields that may hold a sample's input image.
var InputImageFields = []string{"jpg", "jpeg", "png", "webp"}

// imageFormat is a format the input image may be in.
type imageFormat struct {
	name   string
	magic  func([]byte) bool // whether a file starts as this format's do
	config func(*bytes.Reader) (image.Config, error)
	decode func(*bytes.Reader) (image.Image, error)
}

// imageFormats decode the input image by its content rather than its name,
// since datasets do hold PNG files named .jpg. Each reads the header alone
// first, so that the size is checked before the pixels are allocated.
var imageFormats = []imageFormat{
	{"JPEG", func(b []byte) bool { return bytes.HasPrefix(b, []byte{0xff, 0xd8}) },
		func(r *bytes.Reader) (image.Config, error) { return jpeg.DecodeConfig(r) },
		func(r *bytes.Reader) (image.Image, error) { return jpeg.Decode(r) }},
	{"PNG", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) },
		func(r *bytes.Reader) (image.Config, error) { return png.DecodeConfig(r) },
		func(r *bytes.Reader) (image.Image, error) { return png.Decode(r) }},
	{"WebP", func(b []byte) bool { return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP" },
		func(r *bytes.Reader) (image.Config, error) { return webp.DecodeConfig(r) },
		func(r *bytes.Reader) (image.Image, error) { return webp.Decode(r) }},
}

// InputImageField returns the field of s that holds its input image, or ""
// when it has none. A sample with more than one (KEY.jpg and KEY.png) is an
// error: which one was segmented cannot be told.
func InputImageField(s *shard.Sample) (string, error) {
	var present []string
	for _, f := range InputImageFields {
		if _, ok := s.Fields[f]; ok {
			present = append(present, f)
		}
	}
	switch len(present) {
	case 0:
		return "", nil
	case 1:
		return present[0], nil
	}
	return "", fmt.Errorf("more than one input image: %s", joinFields(s.Key, present))
}

// DecodeInputImage decodes the input image of sample s, or returns nil
// without error when s has none. The image's height and width are checked
// against lim.MaxPixels from its header, before its pixels are decoded, and
// its member against lim.MaxMemberBytes. Errors are of type *Error and name
// the member: a JPEG, PNG or WebP that does not decode, or a file in none
// of those formats.
func DecodeInputImage(s *shard.Sample, shardName string, lim Limits) (image.Image, error) {
	field, err := InputImageField(s)
	if err != nil {
		return nil, &Error{Shard: shardName, Key: s.Key, Err: err}
	}
	if field == "" {
		return nil, nil
	}
	img, err := decodeInputImage(s.Fields[field], lim)
	if err != nil {
		return nil, &Error{Shard: shardName, Key: s.Key, Member: s.Key + "." + field, Err: fmt.Errorf("input image: %w", err)}
	}
	return img, nil
}

func decodeInputImage(data []byte, lim Limits) (image.Image, error) {
	if n := int64(len(data)); lim.MaxMemberBytes > 0 && n > lim.MaxMemberBytes {
		return nil, fmt.Errorf("size %d bytes exceeds the limit of %d", n, lim.MaxMemberBytes)
	}
	i := slices.IndexFunc(imageFormats, func(f imageFormat) bool { return f.magic(data) })
	if i < 0 {
		return nil, errors.New("not a JPEG, PNG or WebP file")
	}
	f := imageFormats[i]
	cfg, err := f.config(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s header: %w", f.name, err)
	}
	if lim.MaxPixels > 0 {
		if err := checkSize(cfg.Height, cfg.Width, lim); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	img, err := f.decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return img, nil
}

// joinFields names the members key.field of fields.
func joinFields(key string, fields []string) string {
	var b bytes.Buffer
	for i, f := range fields {
		if i > 0 {
			b.WriteString(" and ")
		}
		b.WriteString(key + "." + f)
	}
	return b.String()
}

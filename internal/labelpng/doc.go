// Package labelpng decodes segmentation label maps stored as PNG images.
//
// A label PNG holds one class id per pixel: either a grayscale image whose
// gray level is the id (8 or 16 bits, or 1, 2 or 4 bits for few classes), or
// a palette image whose palette index is the id, as PASCAL VOC stores its
// labels (the palette only makes the ids visible). Color images are rejected,
// since mapping colors back to ids needs a dataset-specific table.
//
// Package image/png scales 1, 2 and 4-bit gray levels up to 8 bits, so that
// a 1-bit pixel of 1 reads as 255. [Decode] undoes that scaling using the bit
// depth from the IHDR chunk and returns the raw ids. It also checks the
// image size from IHDR before decoding, so a small file cannot expand into a
// huge image.
package labelpng

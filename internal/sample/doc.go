// Package sample turns the members of one shard sample into an image ready
// for evaluation: a label map and a prediction of the same height and
// width.
//
// A sample holds a label, label.png or label.npy (integer class ids of shape
// [H,W]), and exactly one prediction:
//
//	probs.npy   class probabilities, shape [C,H,W] or [1,C,H,W]
//	logits.npy  class scores, shape [C,H,W] or [1,C,H,W]; [H,W] for binary
//	probs.npz   probs.npy inside a NumPy .npz archive
//	logits.npz  logits.npy inside a NumPy .npz archive
//	pred.png    predicted class ids, [H,W]
//	pred.npy    predicted class ids, shape [H,W]
//
// Scores may be float16, float32 or float64; class ids may be any integer
// type. An optional json member holds a JSON object of metadata, and other
// members are ignored by Decode. The input image (jpg, jpeg, png or webp),
// which only the report shows, is read by [DecodeInputImage].
//
// An .npz archive, as numpy.savez or numpy.savez_compressed write it (and
// nnU-Net, whose float16 softmax it stores as softmax or probabilities),
// must hold one array, or [Options.NPZKey] names the one to read.
//
// Scores are channels-first by default. Channels-last scores, of shape
// [H,W,C] or [1,H,W,C] (binary logits: [H,W] or [H,W,1]), are read with
// [Options.Layout] set to [HWC] and transposed into the class-major order of
// [Image.Scores]. The layout is never guessed from the shape: a 3x4x3 array
// is either.
//
// Decode checks shapes and sizes against [Limits] but not values: label ids
// and NaN scores are for the caller, which knows the class count and the
// ignore label.
package sample

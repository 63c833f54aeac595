// Package sample turns the members of one shard sample into an image ready
// for evaluation: a label map and a prediction of the same height and
// width.
//
// A sample holds a label, label.png or label.npy (integer class ids of shape
// [H,W]), and exactly one prediction:
//
//	probs.npy   class probabilities, shape [C,H,W] or [1,C,H,W]
//	logits.npy  class scores, shape [C,H,W] or [1,C,H,W]; [H,W] for binary
//	pred.png    predicted class ids, [H,W]
//	pred.npy    predicted class ids, shape [H,W]
//
// Scores may be float16, float32 or float64; class ids may be any integer
// type. An optional json member holds a JSON object of metadata, and other
// members (the input image, say) are ignored.
//
// Decode checks shapes and sizes against [Limits] but not values: label ids
// and NaN scores are for the caller, which knows the class count and the
// ignore label.
package sample

package evaluate

import "github.com/segeval/segeval/internal/lovasz"

// ErrBadInput marks an error caused by the input data; test for it with
// IsBadInput, which also knows the decoders' typed errors.
//
// This package owns segeval's error model. An error is either bad input or
// an infrastructure failure. Bad input is a defect of the data: a truncated
// or corrupt shard (*shard.Error), a member that does not decode or has the
// wrong shape (*sample.Error), values the math rejects (labels outside the
// classes, scores that are not finite, probabilities that do not sum to 1,
// a class count that disagrees: errors wrapping ErrBadInput). It is the
// same on every attempt, so it is never retried: it fails the run with a
// message naming the shard or file, the sample and the member, or, under a
// rejection budget, sets the sample aside in rejected.jsonl. Every other
// error (storage, network, the runner) is an infrastructure failure, which
// the runner retries and which is never set aside. The kind is decided on
// the worker, where the typed error exists: errors cross a Beam runner as
// text. Messages speak of the data, never of the command line: packages
// below cmd/run do not name its flags, and cmd/run adds the flag to change
// when it reports an error (and maps the kinds to its exit codes).
var ErrBadInput = lovasz.ErrBadInput

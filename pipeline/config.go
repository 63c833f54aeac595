package pipeline

import "github.com/segeval/segeval/transforms"

// The parts of a Config that the transforms consume as they are. They are
// aliases, so that a caller (the CLI, a test) configures a run through this
// package alone, while each keeps one definition, beside the code that acts
// on it.
type (
	// PairedInputs names the two globs of a paired layout: prediction
	// files and label files, paired by key.
	PairedInputs = transforms.PairedInputs
	// Policy says how a run treats samples it cannot evaluate.
	Policy = transforms.Policy
	// GateSpec configures the regression gate: the baseline, the
	// thresholds and whether a failed gate fails the job.
	GateSpec = transforms.GateSpec
	// HistorySpec says where a model's run history is kept.
	HistorySpec = transforms.HistorySpec
	// Progress is how far the workers of this process have come.
	Progress = transforms.Progress
)

// Defaults of the Config fields whose zero value means "the default".
const (
	// DefaultOutputParts is the number of parts rejected.jsonl is written
	// in before they are merged (Config.OutputParts).
	DefaultOutputParts = transforms.DefaultParts
	// DefaultRestrictionBytes is the size of the pieces a shard is first
	// split into for evaluation (Config.RestrictionBytes).
	DefaultRestrictionBytes = transforms.DefaultRestrictionBytes
)

// CurrentProgress returns the progress of the workers running in this
// process: all of them with the embedded runner, none with a remote one,
// whose own UI shows progress instead.
func CurrentProgress() Progress { return transforms.CurrentProgress() }

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/segeval/segeval/internal/gate"
	"github.com/segeval/segeval/internal/storage"
	"github.com/segeval/segeval/pipeline"
)

// How a failure reads. A user sees the root cause in a line or two (what,
// which file, sample and member, and the flag to change when there is one),
// never the runner's plan dumps, which go to the runner's log.

// maxCauseLines is the most lines of a root cause printed (the rest is in
// the runner's log, or behind --verbose), so that with a line saying how
// many more, a hint and the log's path a failure takes at most 5 lines.
const maxCauseLines = 2

// reportFailure prints why the run failed: the root cause of the runner's
// error, a flag hint when one applies, and where the runner's log is.
func reportFailure(w io.Writer, err error, runLog *runnerLog) {
	cause := rootCause(err.Error())
	lines := strings.Split(cause, "\n")
	if len(lines) > maxCauseLines {
		lines = append(lines[:maxCauseLines], fmt.Sprintf("(%d more lines)", len(lines)-maxCauseLines))
	}
	fmt.Fprintln(w, "segeval: run failed:", strings.Join(lines, "\n  "))
	if h := hint(cause, isSet); h != "" {
		fmt.Fprintln(w, "segeval:", h)
	}
	if runLog != nil && runLog.Written() {
		fmt.Fprintf(w, "segeval: the runner's log is %s (--verbose prints it here)\n", runLog.Path())
	}
}

// rootCause returns the innermost message of a runner's error. Errors cross
// a Beam runner as text, even the embedded one: a DoFn's error arrives
// wrapped in the bundle's plan ("DataSource[...]", "caused by:",
// "DoFn[UID:...] failed:"), with the DoFn's own message last.
func rootCause(msg string) string {
	const causedBy = "\tcaused by:\n"
	if i := strings.LastIndex(msg, causedBy); i >= 0 {
		msg = msg[i+len(causedBy):]
	}
	if strings.HasPrefix(msg, "DoFn[") {
		if _, rest, ok := strings.Cut(msg, "\n"); ok {
			msg = rest
		}
	}
	return strings.TrimSpace(msg)
}

// A flagHint names the flag behind a cause that an internal package reports
// in its own terms: the packages below the CLI do not know its flags.
type flagHint struct {
	cause *regexp.Regexp
	// hint returns the hint for the matched cause, or ""; set reports
	// whether a flag was given.
	hint func(match []string, set func(name string) bool) string
}

// flagHints are matched against root causes. The causes arrive as text
// (see rootCause), so they are matched as text; TestFlagHints produces each
// from the package that reports it, so that a reworded message fails there.
var flagHints = []flagHint{
	{regexp.MustCompile(`the prediction has (\d+) classes, expected (\d+)`), func(m []string, set func(string) bool) string {
		if !set("num_classes") {
			return "" // images disagree with each other
		}
		return fmt.Sprintf("--num_classes=%s but the predictions have %s classes (without --num_classes the number is taken from the data)", m[2], m[1])
	}},
	{regexp.MustCompile(`multiclass mode needs at least 2 classes of scores`), func([]string, func(string) bool) string {
		return "one logit per pixel is a binary model: pass --mode=binary"
	}},
	{regexp.MustCompile(`binary mode needs logits of shape`), func([]string, func(string) bool) string {
		return "predictions with a score per class are evaluated with --mode=multiclass"
	}},
	{regexp.MustCompile(`the prediction is a class map, which does not say how many classes`), func([]string, func(string) bool) string {
		return "argmax maps need --num_classes"
	}},
	{regexp.MustCompile(`the archive holds more than one array: (.*); name the one to read`), func(m []string, _ func(string) bool) string {
		return fmt.Sprintf("choose the array with --npz_key (one of: %s)", m[1])
	}},
	{regexp.MustCompile(`sum to \S+, not 1 within`), func([]string, func(string) bool) string {
		return "logits stored as probabilities? store them as KEY.logits.npy; --prob_tolerance sets the tolerance"
	}},
}

// hint returns the flag hint for a root cause, or "".
func hint(cause string, set func(name string) bool) string {
	for _, h := range flagHints {
		if m := h.cause.FindStringSubmatch(cause); m != nil {
			return h.hint(m, set)
		}
	}
	return ""
}

// inputHint names the flag of an input pattern that matches nothing.
func inputHint(err error, cfg pipeline.Config) string {
	var none *pipeline.NoMatchError
	if !errors.As(err, &none) {
		return err.Error()
	}
	name := "input"
	switch none.Pattern {
	case cfg.Paired.Predictions:
		name = "prediction_glob"
	case cfg.Paired.Labels:
		name = "label_glob"
	}
	return fmt.Sprintf("--%s: %s matches no file", name, none.Pattern)
}

// maxGateLines is the most failed checks printed; validation.json has all.
const maxGateLines = 4

// gateOutcome prints the gate's verdict, the failed checks with their
// deltas on stderr, and turns a failed gate into the regression exit code.
func gateOutcome(ctx context.Context, store *storage.Store, output string, stdout, stderr io.Writer) int {
	path := storage.Join(output, gate.ValidationFile)
	data, err := store.ReadFile(ctx, path)
	if errors.Is(err, os.ErrNotExist) {
		return exitOK // not gated
	}
	var v gate.Validation
	if err == nil {
		err = json.Unmarshal(data, &v)
	}
	if err != nil {
		fmt.Fprintln(stderr, "segeval: reading the gate's verdict:", err)
		return exitFailed
	}
	if v.OK {
		fmt.Fprintln(stdout, "gate: BLESSED")
		return exitOK
	}
	var failed []gate.Check
	for _, c := range v.Checks {
		if !c.OK {
			failed = append(failed, c)
		}
	}
	fmt.Fprintln(stdout, "gate: NOT_BLESSED")
	fmt.Fprintf(stderr, "segeval: gate NOT_BLESSED: %d of %d checks failed (all in %s)\n", len(failed), len(v.Checks), path)
	for i, c := range failed {
		if i == maxGateLines-1 && len(failed) > maxGateLines {
			fmt.Fprintf(stderr, "  and %d more\n", len(failed)-i)
			break
		}
		if c.Baseline == nil {
			fmt.Fprintf(stderr, "  %s: %s, threshold %g\n", c.Name, num(c.Candidate), c.Threshold)
		} else {
			fmt.Fprintf(stderr, "  %s: %s against the baseline's %s (delta %s), threshold %g\n", c.Name, num(c.Candidate), num(c.Baseline), signed(c.Delta), c.Threshold)
		}
	}
	return exitRegression
}

// signed formats a delta with its sign, "-" when undefined.
func signed(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%+.4f", *v)
}

package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	dataflow "google.golang.org/api/dataflow/v1b3"
)

// deployFiles returns the deployment files, by path relative to deploy/.
func deployFiles(t *testing.T) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		files[filepath.ToSlash(p)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestFilesParse(t *testing.T) {
	bash, _ := exec.LookPath("bash")
	for name, data := range deployFiles(t) {
		t.Run(name, func(t *testing.T) {
			switch path.Ext(name) {
			case ".json":
				var v any
				if err := json.Unmarshal(data, &v); err != nil {
					t.Error(err)
				}
			case ".yaml", ".yml":
				if err := checkYAML(data); err != nil {
					t.Error(err)
				}
			case ".sh":
				if bash == "" {
					t.Skip("no bash to check the syntax")
				}
				if out, err := exec.Command(bash, "-n", name).CombinedOutput(); err != nil {
					t.Errorf("bash -n: %v\n%s", err, out)
				}
			}
		})
	}
}

// checkYAML parses every document of a YAML stream: each must be a mapping,
// and one that declares a Kubernetes kind needs an apiVersion and a name.
func checkYAML(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", i, err)
		}
		if len(doc) == 0 {
			return fmt.Errorf("document %d is empty", i)
		}
		if _, ok := doc["kind"]; !ok {
			continue
		}
		meta, _ := doc["metadata"].(map[string]any)
		if doc["apiVersion"] == nil || meta["name"] == nil {
			return fmt.Errorf("document %d (kind %v) lacks apiVersion or metadata.name", i, doc["kind"])
		}
	}
}

// flagsIn returns the cmd/run flags a deployment file passes, in order:
//   - a shell script: the flags of commands that run segeval (or submit.sh,
//     which passes its arguments on), and the keys of the --parameters of
//     `gcloud dataflow flex-template run`;
//   - JSON: a template's metadata parameters, a launch request's parameters;
//   - YAML: the flags of containers whose command runs segeval or submit.sh.
func flagsIn(name string, data []byte) ([]string, error) {
	switch path.Ext(name) {
	case ".sh":
		return shellFlags(string(data)), nil
	case ".json":
		var doc struct {
			Parameters []struct {
				Name string `json:"name"`
			} `json:"parameters"`
			LaunchParameter struct {
				Parameters map[string]string `json:"parameters"`
			} `json:"launchParameter"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, err
		}
		var flags []string
		for _, p := range doc.Parameters {
			flags = append(flags, p.Name)
		}
		for _, k := range slices.Sorted(maps.Keys(doc.LaunchParameter.Parameters)) {
			flags = append(flags, k)
		}
		return flags, nil
	case ".yaml", ".yml":
		return yamlFlags(data)
	}
	return nil, nil
}

// runsCLI reports whether a command word runs segeval: the binary itself,
// $SEGEVAL (the scripts' name for it), or submit.sh.
func runsCLI(word string) bool {
	return path.Base(word) == "segeval" || path.Base(word) == "submit.sh" ||
		word == "$SEGEVAL" || strings.HasPrefix(word, "${SEGEVAL")
}

// flagName returns the name of a command-line flag argument (-name,
// --name=value).
func flagName(arg string) (string, bool) {
	if !strings.HasPrefix(arg, "-") {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return name, name != ""
}

func shellFlags(script string) []string {
	var flags []string
	for _, words := range shellCommands(script) {
		for len(words) > 0 && (words[0] == "exec" || regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[0])) {
			words = words[1:]
		}
		if len(words) == 0 {
			continue
		}
		if runsCLI(words[0]) {
			for _, w := range words[1:] {
				if name, ok := flagName(w); ok {
					flags = append(flags, name)
				}
			}
			continue
		}
		if words[0] != "gcloud" || !slices.Contains(words, "flex-template") || !slices.Contains(words, "run") {
			continue
		}
		for i, w := range words {
			if v, ok := strings.CutPrefix(w, "--parameters="); ok {
				flags = append(flags, parameterKeys(v)...)
			} else if w == "--parameters" && i+1 < len(words) {
				flags = append(flags, parameterKeys(words[i+1])...)
			}
		}
	}
	return flags
}

// parameterKeys returns the keys of a gcloud dictionary flag value,
// k1=v1,k2=v2 or, with another separator, ^~^k1=v1~k2=v2.
func parameterKeys(v string) []string {
	sep := ","
	if rest, ok := strings.CutPrefix(v, "^"); ok {
		if s, kv, ok := strings.Cut(rest, "^"); ok {
			sep, v = s, kv
		}
	}
	var keys []string
	for _, kv := range strings.Split(v, sep) {
		if k, _, ok := strings.Cut(kv, "="); ok && k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// shellCommands splits a script into simple commands, as lists of words with
// the quotes removed and no expansion: enough for the scripts here.
func shellCommands(script string) [][]string {
	var cmds [][]string
	var words []string
	var word strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	var quote byte
	for i := 0; i < len(script); i++ {
		c := script[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				word.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == '\\' && i+1 < len(script):
			i++
			if script[i] != '\n' {
				word.WriteByte(script[i])
				inWord = true
			}
		case c == '#' && !inWord:
			for i+1 < len(script) && script[i+1] != '\n' {
				i++
			}
		case c == '\n' || c == ';' || c == '|' || c == '&':
			endCmd()
		case c == ' ' || c == '\t':
			endWord()
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

// yamlFlags returns the flags of every container, at any depth, whose
// command runs segeval: the arguments after that word in command and args.
func yamlFlags(data []byte) ([]string, error) {
	var flags []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for _, key := range []string{"containers", "initContainers"} {
				list, _ := v[key].([]any)
				for _, c := range list {
					c, _ := c.(map[string]any)
					flags = append(flags, containerFlags(c)...)
				}
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc any
		err := dec.Decode(&doc)
		if err == io.EOF {
			return flags, nil
		}
		if err != nil {
			return nil, err
		}
		walk(doc)
	}
}

func containerFlags(c map[string]any) []string {
	var words []string
	for _, key := range []string{"command", "args"} {
		list, _ := c[key].([]any)
		for _, w := range list {
			words = append(words, fmt.Sprint(w))
		}
	}
	i := slices.IndexFunc(words, runsCLI)
	if i < 0 {
		return nil
	}
	var flags []string
	for _, w := range words[i+1:] {
		if name, ok := flagName(w); ok {
			flags = append(flags, name)
		}
	}
	return flags
}

// TestFlagsAreReal checks every flag the deployment files pass to cmd/run
// against the flags of the built binary, Beam's runner flags included: a
// renamed or misspelt flag would make the CLI exit with a usage error in
// production.
func TestFlagsAreReal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/run; skipped in -short mode")
	}
	real := realFlags(t)

	// The extraction, on files that pass a flag cmd/run does not have.
	tests := []struct {
		name    string
		file    string
		content string
		unknown []string
	}{
		{"script", "x.sh", "exec \"$SEGEVAL\" \\\n  --runner=flink \\\n  --input_glob=\"$INPUT\" # renamed\n", []string{"input_glob"}},
		{"binary path", "x.sh", "/usr/local/bin/segeval --num_class=3 --output=o && echo --not_a_flag\n", []string{"num_class"}},
		{"template run", "x.sh", "gcloud dataflow flex-template run j --region=r \\\n  --parameters=^~^input=a,b~outputs=o\n", []string{"outputs"}},
		{"template run, repeated", "x.sh", "gcloud dataflow flex-template run j --parameters input=a --parameters mode_x=b\n", []string{"mode_x"}},
		{"other commands", "x.sh", "gcloud scheduler jobs create http j --parameters=x=1 --schedule='0 3 * * *'\nsegeval --mode=binary\n", nil},
		// Beam's runner flags are flags of the binary too, defined when
		// cmd/run links the runners.
		{"Beam runner flags", "x.sh", "exec \"$SEGEVAL\" --runner=flink --parallelism=8 --job_name=j --execute_async=true --parallelsm=8\n", []string{"parallelsm"}},
		{"Beam flag as a template parameter", "launch.json", `{"launchParameter": {"parameters": {"execute_async": "true", "execute_asnyc": "true"}}}`, []string{"execute_asnyc"}},
		{"template metadata", "metadata.json", `{"parameters": [{"name": "input"}, {"name": "ignore"}]}`, []string{"ignore"}},
		{"launch request", "launch.json", `{"launchParameter": {"parameters": {"output": "o", "classes_": "all"}}}`, []string{"classes_"}},
		{"manifest", "cron.yaml", "kind: CronJob\nspec:\n  template:\n    spec:\n      containers:\n        - command: [/bin/sh, /usr/local/bin/submit.sh]\n          args: [--overwrite, --max_pixel=4]\n        - command: [java]\n          args: [--flink-master=x]\n", []string{"max_pixel"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags, err := flagsIn(tt.file, []byte(tt.content))
			if err != nil {
				t.Fatal(err)
			}
			if len(flags) == 0 {
				t.Fatal("no flag found")
			}
			if got := unknownFlags(flags, real); !slices.Equal(got, tt.unknown) {
				t.Errorf("unknown flags %q in %q, want %q", got, flags, tt.unknown)
			}
		})
	}

	// The deployment files. Those listed must pass flags: finding none means
	// the extraction missed them.
	mustPass := []string{"dataflow/metadata.json", "dataflow/build_and_run.sh", "flink/submit.sh",
		"schedules/dataflow_launch.json", "schedules/flink-nightly.yaml"}
	found := map[string]bool{}
	for name, data := range deployFiles(t) {
		flags, err := flagsIn(name, data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		found[name] = len(flags) > 0
		if unknown := unknownFlags(flags, real); len(unknown) > 0 {
			t.Errorf("%s passes flags cmd/run does not define: %q", name, unknown)
		}
	}
	for _, name := range mustPass {
		if !found[name] {
			t.Errorf("%s: no cmd/run flag found", name)
		}
	}
}

// TestTemplateMetadata checks the Flex Template's parameters: complete, and
// with regexes that the scheduled launch request satisfies. The template
// offers every flag of cmd/run's own (Beam's come from the launcher), so that
// a new flag reaches template users.
func TestTemplateMetadata(t *testing.T) {
	var meta struct {
		Parameters []struct {
			Name, Label, HelpText string
			Regexes               []string
		}
	}
	var launch struct {
		LaunchParameter struct {
			Parameters map[string]string
		}
	}
	for file, v := range map[string]any{"dataflow/metadata.json": &meta, "schedules/dataflow_launch.json": &launch} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	var names []string
	for _, p := range meta.Parameters {
		names = append(names, p.Name)
		if p.Name == "" || p.Label == "" || p.HelpText == "" {
			t.Errorf("parameter %+v lacks a name, label or help text", p)
		}
		for _, expr := range p.Regexes {
			re, err := regexp.Compile(expr)
			if err != nil {
				t.Errorf("%s: %v", p.Name, err)
				continue
			}
			if v, ok := launch.LaunchParameter.Parameters[p.Name]; ok && !re.MatchString(v) {
				t.Errorf("dataflow_launch.json: %s=%q does not match %s", p.Name, v, expr)
			}
		}
	}
	for _, name := range ownFlags(t) {
		if !slices.Contains(names, name) {
			t.Errorf("metadata.json has no parameter %s", name)
		}
	}
	// Every parameter the launch passes is declared, so that the template's
	// metadata validates it, and no launch relies on the service passing an
	// undeclared one through.
	for name := range launch.LaunchParameter.Parameters {
		if !slices.Contains(names, name) {
			t.Errorf("dataflow_launch.json passes %s, which metadata.json does not declare", name)
		}
	}
}

func unknownFlags(flags []string, real map[string]bool) []string {
	var unknown []string
	for _, f := range flags {
		if !real[f] {
			unknown = append(unknown, f)
		}
	}
	return unknown
}

// segevalHelp builds cmd/run once and returns what its -help prints.
var segevalHelp = sync.OnceValues(func() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "segeval-deploy-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "segeval")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/run").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	var help bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-help")
	cmd.Stdout, cmd.Stderr = &help, &help
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("segeval -help: %v\n%s", err, help.String())
	}
	return help.String(), nil
})

// helpFlags returns the flags listed as "  -name ..." in help.
func helpFlags(help string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(help, -1) {
		names = append(names, m[1])
	}
	return names
}

// realFlags returns the flags cmd/run's -help lists: segeval's, by group,
// then Beam's runner flags.
func realFlags(t *testing.T) map[string]bool {
	t.Helper()
	help, err := segevalHelp()
	if err != nil {
		t.Fatal(err)
	}
	real := map[string]bool{}
	for _, name := range helpFlags(help) {
		real[name] = true
	}
	for _, name := range []string{"input", "output", "runner", "worker_binary"} {
		if !real[name] {
			t.Fatalf("segeval -help does not list -%s:\n%s", name, help)
		}
	}
	return real
}

// ownFlags returns the flags cmd/run records in every run's provenance: the
// flags its -help lists by group before "This program:" (-check, -verbose,
// -version), which Beam's runner flags follow.
func ownFlags(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds cmd/run; skipped in -short mode")
	}
	help, err := segevalHelp()
	if err != nil {
		t.Fatal(err)
	}
	recorded, _, ok := strings.Cut(help, "\nThis program:\n")
	names := helpFlags(recorded)
	if !ok || len(names) == 0 {
		t.Fatalf("segeval -help lists no flag before \"This program:\":\n%s", help)
	}
	return names
}

// sizing is deploy/capacity.json: the measured basis of the capacity plan and
// the night it is sized for. The deployment files carry numbers derived from
// it (README.md, Sizing); the tests below derive them again and compare.
type sizing struct {
	Basis                    string  `json:"basis"`
	ImagesPerNight           float64 `json:"images_per_night"`
	TargetHours              float64 `json:"target_hours"`
	ImagesPerSecondPerVCPU   float64 `json:"images_per_second_per_vcpu"`
	GBPerEvaluatingCore      float64 `json:"gb_per_evaluating_core"`
	GBBasePerWorker          float64 `json:"gb_base_per_worker"`
	Headroom                 float64 `json:"headroom"`
	DataflowMachineType      string  `json:"dataflow_machine_type"`
	FlinkSlotsPerTaskManager int     `json:"flink_slots_per_taskmanager"`
}

// machineTypes are the Compute Engine machine types a sizing may name: vCPUs
// and memory in GB.
var machineTypes = map[string]struct {
	vcpus    int
	memoryGB float64
}{
	"n2-standard-2": {2, 8}, "n2-standard-4": {4, 16}, "n2-standard-8": {8, 32}, "n2-standard-16": {16, 64},
	"n2-highmem-2": {2, 16}, "n2-highmem-4": {4, 32}, "n2-highmem-8": {8, 64}, "n2-highmem-16": {16, 128},
	"n2-highcpu-2": {2, 2}, "n2-highcpu-4": {4, 4}, "n2-highcpu-8": {8, 8}, "n2-highcpu-16": {16, 16},
}

func loadSizing(t *testing.T) sizing {
	t.Helper()
	data, err := os.ReadFile("capacity.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s sizing
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("capacity.json: %v", err)
	}
	if s.ImagesPerNight <= 0 || s.TargetHours <= 0 || s.ImagesPerSecondPerVCPU <= 0 || s.GBPerEvaluatingCore <= 0 ||
		s.GBBasePerWorker <= 0 || s.Headroom < 1 || s.FlinkSlotsPerTaskManager < 1 {
		t.Fatalf("capacity.json: a number is missing or out of range: %+v", s)
	}
	return s
}

// cores is the number of cores evaluating at once that gets the night's
// images through in the target time, with the headroom.
func (s sizing) cores() float64 {
	return s.ImagesPerNight * s.Headroom / (s.ImagesPerSecondPerVCPU * 3600 * s.TargetHours)
}

// imagesIn is how many images that many evaluating cores get through in the
// target time.
func (s sizing) imagesIn(cores int) float64 {
	return float64(cores) * s.ImagesPerSecondPerVCPU * 3600 * s.TargetHours
}

// peakGB is the memory a worker process evaluating on that many cores needs:
// it evaluates at most GOMAXPROCS images at once.
func (s sizing) peakGB(cores int) float64 {
	return float64(cores)*s.GBPerEvaluatingCore + s.GBBasePerWorker
}

// dataflowWorkers is the number of workers of the sizing's machine type.
func (s sizing) dataflowWorkers() (int, error) {
	m, ok := machineTypes[s.DataflowMachineType]
	if !ok {
		return 0, fmt.Errorf("unknown machine type %q", s.DataflowMachineType)
	}
	if s.peakGB(m.vcpus) > m.memoryGB {
		return 0, fmt.Errorf("%s: %.1f GB, a worker evaluating on its %d vCPUs needs %.1f GB", s.DataflowMachineType, m.memoryGB, m.vcpus, s.peakGB(m.vcpus))
	}
	return int(math.Ceil(s.cores() / float64(m.vcpus))), nil
}

// flinkTaskManagers is the number of TaskManagers of the sizing's slots.
func (s sizing) flinkTaskManagers() int {
	return int(math.Ceil(s.cores() / float64(s.FlinkSlotsPerTaskManager)))
}

// TestSizingArithmetic checks the derivation against the README's capacity
// plan, whose table gives the numbers without headroom.
func TestSizingArithmetic(t *testing.T) {
	readme := sizing{TargetHours: 1, ImagesPerSecondPerVCPU: 2.16, GBPerEvaluatingCore: 0.8, GBBasePerWorker: 0.5,
		Headroom: 1, DataflowMachineType: "n2-standard-4", FlinkSlotsPerTaskManager: 1}
	with := func(images, headroom float64, machine string, slots int) sizing {
		s := readme
		s.ImagesPerNight, s.Headroom, s.DataflowMachineType, s.FlinkSlotsPerTaskManager = images, headroom, machine, slots
		return s
	}
	tests := []struct {
		name          string
		s             sizing
		workers       int
		taskManagers  int
		wantErr       bool
		coreHoursNear float64
	}{
		{"README, 500 images", with(500, 1, "n2-standard-4", 1), 1, 1, false, 0.064},
		{"README, 50,000 images", with(50000, 1, "n2-standard-4", 1), 2, 7, false, 6.4},
		{"README, 5,000,000 images", with(5e6, 1, "n2-standard-4", 1), 161, 644, false, 643}, // the README rounds 643.004 slots down
		{"50,000 with headroom, 2 slots", with(50000, 1.2, "n2-standard-4", 2), 2, 4, false, 7.7},
		{"5,000,000 with headroom, 2 slots", with(5e6, 1.2, "n2-standard-4", 2), 193, 386, false, 772},
		{"highmem fits too", with(50000, 1, "n2-highmem-4", 1), 2, 7, false, 6.4},
		{"highcpu: 2 images at once need 2.1 GB of 2", with(50000, 1, "n2-highcpu-2", 1), 0, 7, true, 6.4},
		{"unknown machine", with(50000, 1, "n1-standard-4", 1), 0, 7, true, 6.4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.cores() * tt.s.TargetHours; math.Abs(got-tt.coreHoursNear) > 0.05*tt.coreHoursNear {
				t.Errorf("core-hours %.2f, want about %g", got, tt.coreHoursNear)
			}
			workers, err := tt.s.dataflowWorkers()
			if (err != nil) != tt.wantErr {
				t.Fatalf("dataflowWorkers: %d, %v; want error %v", workers, err, tt.wantErr)
			}
			if err == nil && workers != tt.workers {
				t.Errorf("%d Dataflow workers, want %d", workers, tt.workers)
			}
			if got := tt.s.flinkTaskManagers(); got != tt.taskManagers {
				t.Errorf("%d TaskManagers, want %d", got, tt.taskManagers)
			}
		})
	}
}

// fakeTool writes an executable shell script named name into dir that
// appends its arguments to log, one call per line, each argument followed by
// \x1f, and copies the file of a --message-body-from-file argument next to
// the log. `gcloud scheduler jobs describe` fails, as for a job not created
// yet.
func fakeTool(t *testing.T, dir, name, log string) {
	t.Helper()
	script := `#!/bin/sh
for a in "$@"; do printf '%s\037' "$a"; done >>"` + log + `"
printf '\n' >>"` + log + `"
for a in "$@"; do
  case "$a" in --message-body-from-file=*) cp "${a#*=}" "` + log + `.body";; esac
done
[ "$1 $2 $3" = "scheduler jobs describe" ] && exit 1
exit 0
`
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// runScript runs a deployment script with bash, with fake gcloud and
// segeval commands first on the PATH, and returns the calls they received.
func runScript(t *testing.T, script string, env ...string) (calls [][]string, body []byte) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash to run the script")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	fakeTool(t, dir, "gcloud", log)
	fakeTool(t, dir, "segeval", log)
	cmd := exec.Command(bash, script)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"), "SEGEVAL="+filepath.Join(dir, "segeval"))
	cmd.Env = append(cmd.Env, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		calls = append(calls, strings.Split(strings.TrimSuffix(line, "\x1f"), "\x1f"))
	}
	body, _ = os.ReadFile(log + ".body")
	return calls, body
}

// callOf returns the arguments of the first call that starts with prefix.
func callOf(t *testing.T, calls [][]string, prefix ...string) []string {
	t.Helper()
	for _, c := range calls {
		if len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) {
			return c
		}
	}
	t.Fatalf("no call %q among %q", prefix, calls)
	return nil
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// quantity parses a Kubernetes resource quantity (2, 500m, 2560Mi, 3G) into
// cores or bytes.
func quantity(s string) (float64, error) {
	units := []struct {
		suffix string
		factor float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"m", 1e-3}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			return v * u.factor, err
		}
	}
	return strconv.ParseFloat(s, 64)
}

// launchRequest decodes a Flex Template launch request, rejecting fields the
// API does not have (maxNumWorkers for maxWorkers, say), which the API would
// refuse.
func launchRequest(t *testing.T, data []byte) *dataflow.LaunchFlexTemplateRequest {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var req dataflow.LaunchFlexTemplateRequest
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("launch request: %v\n%s", err, data)
	}
	if req.LaunchParameter == nil || req.LaunchParameter.Environment == nil {
		t.Fatalf("launch request without launchParameter.environment:\n%s", data)
	}
	return &req
}

// dataflowJobName is the form Dataflow accepts for job names,
// [a-z]([-a-z0-9]{0,1022}[a-z0-9])?, but for the length (Go's regexp repeats
// at most 1000 times).
var dataflowJobName = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// TestFlinkSizing checks the Flink files against the sizing: the job's
// parallelism fills the planned TaskManagers' slots, which get the night's
// images through in the target time, and each TaskManager's Go worker has
// the cores and the memory its evaluations take.
func TestFlinkSizing(t *testing.T) {
	s := loadSizing(t)
	var session struct {
		Spec struct {
			FlinkConfiguration map[string]string `yaml:"flinkConfiguration"`
			TaskManager        struct {
				PodTemplate struct {
					Spec struct {
						Containers []k8sContainer `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"podTemplate"`
			} `yaml:"taskManager"`
		} `yaml:"spec"`
	}
	data, err := os.ReadFile("flink/flink-session.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &session); err != nil {
		t.Fatal(err)
	}
	conf := session.Spec.FlinkConfiguration
	slots, err := strconv.Atoi(conf["taskmanager.numberOfTaskSlots"])
	if err != nil {
		t.Fatalf("taskmanager.numberOfTaskSlots: %v", err)
	}
	if slots != s.FlinkSlotsPerTaskManager {
		t.Errorf("flink-session.yaml: %d slots per TaskManager, capacity.json %d", slots, s.FlinkSlotsPerTaskManager)
	}
	want := s.flinkTaskManagers() * slots

	calls, _ := runScript(t, "flink/submit.sh", "INPUT=gs://b/*.tar", "OUTPUT=gs://b/out/{date}/{run_id}")
	run := callOf(t, calls, "--runner=flink")
	v, ok := flagValue(run, "parallelism")
	if !ok {
		t.Fatalf("submit.sh passes no --parallelism: Beam's Flink runner then runs with parallelism 1\n%q", run)
	}
	parallelism, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("--parallelism=%s: %v", v, err)
	}
	if parallelism != want {
		t.Errorf("submit.sh --parallelism=%d, want %d TaskManagers x %d slots = %d", parallelism, s.flinkTaskManagers(), slots, want)
	}
	if got := s.imagesIn(parallelism); got < s.ImagesPerNight*s.Headroom {
		t.Errorf("parallelism %d evaluates %.0f images in %g h, short of %.0f x %g", parallelism, got, s.TargetHours, s.ImagesPerNight, s.Headroom)
	}
	if got := conf["slotmanager.number-of-slots.max"]; got != strconv.Itoa(parallelism) {
		t.Errorf("slotmanager.number-of-slots.max %q, want the job's parallelism %d", got, parallelism)
	}
	if name, _ := flagValue(run, "job_name"); !regexp.MustCompile(`^segeval-[0-9]{8}$`).MatchString(name) {
		t.Errorf("submit.sh --job_name=%q, want segeval-YYYYMMDD", name)
	}

	i := slices.IndexFunc(session.Spec.TaskManager.PodTemplate.Spec.Containers, func(c k8sContainer) bool { return c.Name == "beam-worker-pool" })
	if i < 0 {
		t.Fatal("flink-session.yaml: no beam-worker-pool container")
	}
	res := session.Spec.TaskManager.PodTemplate.Spec.Containers[i].Resources
	for _, r := range []struct {
		name string
		min  float64 // cores or bytes
		max  float64
	}{
		// GOMAXPROCS, hence the images evaluated at once, follows the CPU limit.
		{"cpu", float64(slots), float64(slots)},
		{"memory", s.peakGB(slots) * 1e9, math.Inf(1)},
	} {
		limit, err := quantity(res.Limits[r.name])
		if err != nil {
			t.Errorf("beam-worker-pool limits.%s %q: %v", r.name, res.Limits[r.name], err)
			continue
		}
		if limit < r.min || limit > r.max {
			t.Errorf("beam-worker-pool limits.%s %s, want between %g and %g for %d slots", r.name, res.Limits[r.name], r.min, r.max, slots)
		}
		if res.Requests[r.name] != res.Limits[r.name] {
			t.Errorf("beam-worker-pool requests.%s %q differs from its limit %q", r.name, res.Requests[r.name], res.Limits[r.name])
		}
	}
}

type k8sContainer struct {
	Name      string `yaml:"name"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
}

// TestDataflowSizing checks the scheduled launch and the one-off run against
// the sizing: the machine type has the memory its evaluations take, as many
// workers as get the night's images through in the target time start at
// once, and the launcher does not wait for the job.
func TestDataflowSizing(t *testing.T) {
	s := loadSizing(t)
	workers, err := s.dataflowWorkers()
	if err != nil {
		t.Fatal(err)
	}
	m := machineTypes[s.DataflowMachineType]
	if m.memoryGB/float64(m.vcpus) < s.GBPerEvaluatingCore {
		t.Errorf("%s: %.1f GB per vCPU, an evaluating core needs %g", s.DataflowMachineType, m.memoryGB/float64(m.vcpus), s.GBPerEvaluatingCore)
	}
	if got := s.imagesIn(workers * m.vcpus); got < s.ImagesPerNight*s.Headroom {
		t.Errorf("%d x %s evaluate %.0f images in %g h, short of %.0f x %g", workers, s.DataflowMachineType, got, s.TargetHours, s.ImagesPerNight, s.Headroom)
	}

	data, err := os.ReadFile("schedules/dataflow_launch.json")
	if err != nil {
		t.Fatal(err)
	}
	scheduled := launchRequest(t, data).LaunchParameter

	calls, _ := runScript(t, "dataflow/build_and_run.sh", "PROJECT=p", "REGION=r", "BUCKET=b", "INPUT=gs://b/*.tar", "TAG=t")
	run := callOf(t, calls, "dataflow", "flex-template", "run")
	if !dataflowJobName.MatchString(run[3]) {
		t.Errorf("build_and_run.sh job name %q is not one Dataflow accepts", run[3])
	}
	params, _ := flagValue(run, "parameters")
	oneOff := &dataflow.LaunchFlexTemplateParameter{Parameters: map[string]string{}, Environment: &dataflow.FlexTemplateRuntimeEnvironment{}}
	oneOff.Environment.MachineType, _ = flagValue(run, "worker-machine-type")
	for flag, dst := range map[string]*int64{"num-workers": &oneOff.Environment.NumWorkers, "max-workers": &oneOff.Environment.MaxWorkers} {
		v, _ := flagValue(run, flag)
		*dst, _ = strconv.ParseInt(v, 10, 64)
	}
	sep := ","
	if rest, ok := strings.CutPrefix(params, "^"); ok {
		sep, params, _ = strings.Cut(rest, "^")
	}
	for _, kv := range strings.Split(params, sep) {
		k, v, _ := strings.Cut(kv, "=")
		oneOff.Parameters[k] = v
	}

	for name, launch := range map[string]*dataflow.LaunchFlexTemplateParameter{
		"schedules/dataflow_launch.json": scheduled, "dataflow/build_and_run.sh": oneOff,
	} {
		env := launch.Environment
		if env.MachineType != s.DataflowMachineType {
			t.Errorf("%s: machine type %q, capacity.json %q", name, env.MachineType, s.DataflowMachineType)
		}
		if env.MaxWorkers != int64(workers) {
			t.Errorf("%s: %d workers at most, capacity.json calls for %d", name, env.MaxWorkers, workers)
		}
		// Autoscaling up from one worker would spend the target hour's
		// first part on too few: the planned workers start together.
		if env.NumWorkers != env.MaxWorkers {
			t.Errorf("%s: starts %d workers of %d", name, env.NumWorkers, env.MaxWorkers)
		}
		if launch.Parameters["execute_async"] != "true" {
			t.Errorf("%s: execute_async=%q, want true: the launcher must not wait for the job", name, launch.Parameters["execute_async"])
		}
	}
}

// TestNightlyDataflowLaunch checks how the nightly job is launched: Cloud
// Scheduler starts the workflow with dataflow_launch.json as its argument,
// and the workflow adds the date to the job name before calling the launch
// API.
func TestNightlyDataflowLaunch(t *testing.T) {
	calls, body := runScript(t, "schedules/dataflow_nightly.sh", "PROJECT=p", "REGION=r", "BUCKET=b", "SCHEDULER_SA=sa@p.iam.gserviceaccount.com")
	deploy := callOf(t, calls, "workflows", "deploy")
	if src, _ := flagValue(deploy, "source"); filepath.Base(src) != "dataflow_nightly_workflow.yaml" {
		t.Errorf("deploys workflow source %q", src)
	}
	job := callOf(t, calls, "scheduler", "jobs", "create", "http")
	wantURI := "https://workflowexecutions.googleapis.com/v1/projects/p/locations/r/workflows/" + deploy[2] + "/executions"
	if uri, _ := flagValue(job, "uri"); uri != wantURI {
		t.Errorf("scheduler posts to %s, want %s", uri, wantURI)
	}

	// The executions API wants the argument as a string of JSON.
	var execution struct {
		Argument string `json:"argument"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&execution); err != nil {
		t.Fatalf("scheduler body: %v\n%s", err, body)
	}
	launch := launchRequest(t, []byte(execution.Argument)).LaunchParameter
	data, err := os.ReadFile("schedules/dataflow_launch.json")
	if err != nil {
		t.Fatal(err)
	}
	want := launchRequest(t, bytes.ReplaceAll(data, []byte("YOUR_BUCKET"), []byte("b"))).LaunchParameter
	if got, _ := launch.MarshalJSON(); !bytes.Equal(got, must(want.MarshalJSON())) {
		t.Errorf("the workflow's argument is\n%s\nwant dataflow_launch.json with the bucket:\n%s", got, must(want.MarshalJSON()))
	}
	if name := launch.JobName + "-20250131"; !dataflowJobName.MatchString(name) {
		t.Errorf("job name %q is not one Dataflow accepts", name)
	}

	// The workflow: the job name gets the date from the clock, and the
	// request goes to the launch API with it.
	var workflow struct {
		Main struct {
			Params []string            `yaml:"params"`
			Steps  []map[string]wfStep `yaml:"steps"`
		} `yaml:"main"`
	}
	data, err = os.ReadFile("schedules/dataflow_nightly_workflow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &workflow); err != nil {
		t.Fatal(err)
	}
	assigned := map[string]string{}
	var launched bool
	for _, steps := range workflow.Main.Steps {
		for _, step := range steps {
			for _, a := range step.Assign {
				for k, v := range a {
					assigned[k] = fmt.Sprint(v)
				}
			}
			if step.Call == "googleapis.dataflow.v1b3.projects.locations.flexTemplates.launch" {
				body, _ := step.Args["body"].(map[string]any)
				launched = fmt.Sprint(body["launchParameter"]) == "${launch}"
			}
		}
	}
	if len(workflow.Main.Params) != 1 || assigned["launch"] != "${"+workflow.Main.Params[0]+".launchParameter}" {
		t.Errorf("the workflow does not take the launch parameter from its argument: params %q, launch = %q", workflow.Main.Params, assigned["launch"])
	}
	if !strings.Contains(assigned["day"], "sys.now()") || !strings.Contains(assigned["launch.jobName"], "day") {
		t.Errorf("the workflow does not name the job after the day: day = %q, launch.jobName = %q", assigned["day"], assigned["launch.jobName"])
	}
	if !launched {
		t.Error("the workflow does not call the Flex Template launch API with launchParameter ${launch}")
	}
}

type wfStep struct {
	Assign []map[string]any `yaml:"assign"`
	Call   string           `yaml:"call"`
	Args   map[string]any   `yaml:"args"`
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestNightlyFlinkRetries checks the CronJob's Job against segeval's exit
// codes: a failed gate (3) and bad flags (2) end it at once, since a second
// hour-long evaluation would reach the same end; other failures get the
// retries of backoffLimit, within the deadline.
func TestNightlyFlinkRetries(t *testing.T) {
	s := loadSizing(t)
	var cron struct {
		Spec struct {
			JobTemplate struct {
				Spec struct {
					BackoffLimit          *int `yaml:"backoffLimit"`
					ActiveDeadlineSeconds int  `yaml:"activeDeadlineSeconds"`
					PodFailurePolicy      struct {
						Rules []podFailureRule `yaml:"rules"`
					} `yaml:"podFailurePolicy"`
					Template struct {
						Spec struct {
							RestartPolicy string         `yaml:"restartPolicy"`
							Containers    []k8sContainer `yaml:"containers"`
						} `yaml:"spec"`
					} `yaml:"template"`
				} `yaml:"spec"`
			} `yaml:"jobTemplate"`
		} `yaml:"spec"`
	}
	data, err := os.ReadFile("schedules/flink-nightly.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &cron); err != nil {
		t.Fatal(err)
	}
	job := cron.Spec.JobTemplate.Spec
	pod := job.Template.Spec
	if pod.RestartPolicy != "Never" {
		t.Errorf("restartPolicy %q: a pod failure policy needs Never", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want the submitter alone", len(pod.Containers))
	}
	backoff := 6 // Kubernetes' default
	if job.BackoffLimit != nil {
		backoff = *job.BackoffLimit
	}
	if backoff < 1 {
		t.Errorf("backoffLimit %d: an infrastructure failure gets no second attempt", backoff)
	}
	if need := float64(backoff+1) * s.TargetHours * 3600; float64(job.ActiveDeadlineSeconds) < need {
		t.Errorf("activeDeadlineSeconds %d leaves no time for %d attempts of %g h", job.ActiveDeadlineSeconds, backoff+1, s.TargetHours)
	}

	tests := []struct {
		exit int
		want string
	}{
		{3, "FailJob"}, // the gate failed: the evaluation ran and wrote its outputs
		{2, "FailJob"}, // bad flags or configuration (or a Go panic): nothing a retry changes
		{1, "Count"},   // the run failed, maybe on infrastructure: retried
		{137, "Count"}, // the submitter was killed
	}
	for _, tt := range tests {
		if got := podFailureAction(job.PodFailurePolicy.Rules, pod.Containers[0].Name, tt.exit); got != tt.want {
			t.Errorf("exit code %d: %s, want %s", tt.exit, got, tt.want)
		}
	}
}

type podFailureRule struct {
	Action      string `yaml:"action"`
	OnExitCodes *struct {
		ContainerName string `yaml:"containerName"`
		Operator      string `yaml:"operator"`
		Values        []int  `yaml:"values"`
	} `yaml:"onExitCodes"`
}

// podFailureAction is what a Job does when container exits with code, after
// Kubernetes' pod failure policy: the first rule that matches decides, and a
// failure no rule matches counts against backoffLimit.
func podFailureAction(rules []podFailureRule, container string, code int) string {
	for _, r := range rules {
		on := r.OnExitCodes
		if on == nil || (on.ContainerName != "" && on.ContainerName != container) {
			continue
		}
		in := slices.Contains(on.Values, code)
		if (on.Operator == "In" && in) || (on.Operator == "NotIn" && !in && code != 0) {
			return r.Action
		}
	}
	return "Count"
}

package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
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

// realFlags builds cmd/run and returns the flags its -help lists: the flag
// package prints every defined flag, Beam's included, as "  -name ...".
func realFlags(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "segeval")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../cmd/run").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var help bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-help")
	cmd.Stdout, cmd.Stderr = &help, &help
	if err := cmd.Run(); err != nil {
		t.Fatalf("segeval -help: %v\n%s", err, help.String())
	}
	real := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(help.String(), -1) {
		real[m[1]] = true
	}
	for _, name := range []string{"input", "output", "runner", "worker_binary"} {
		if !real[name] {
			t.Fatalf("segeval -help does not list -%s:\n%s", name, help.String())
		}
	}
	return real
}

// ownFlags returns the flags cmd/run defines itself, all but Beam's and
// --version: the ownFlags list that it records in every run's provenance.
func ownFlags(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../cmd/run/*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var names []string
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok || len(spec.Names) != 1 || spec.Names[0].Name != "ownFlags" || len(spec.Values) != 1 {
				return true
			}
			list, ok := spec.Values[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			for _, elt := range list.Elts {
				if lit, ok := elt.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if name, err := strconv.Unquote(lit.Value); err == nil {
						names = append(names, name)
					}
				}
			}
			return false
		})
	}
	if len(names) == 0 {
		t.Fatal("found no ownFlags list in cmd/run")
	}
	return names
}

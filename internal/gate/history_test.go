package gate

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/segeval/segeval/internal/httpfault"
	"github.com/segeval/segeval/internal/storage"
)

// testBucket is the bucket of the fake Cloud Storage server.
const testBucket = "segeval-test"

// startLossyGCS starts a fake Cloud Storage server with testBucket behind
// a proxy that loses the responses to armed uploads, cutting the
// connection or answering 503, and points Stores created afterwards at
// the proxy.
func startLossyGCS(t *testing.T, cut bool) *httpfault.LoseResponses {
	t.Helper()
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatalf("starting fake GCS: %v", err)
	}
	t.Cleanup(srv.Stop)
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: testBucket})
	l := httpfault.NewLoseResponses(srv.HTTPHandler(), cut)
	front := httptest.NewServer(l) // loopback only
	t.Cleanup(front.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(front.URL, "http://"))
	return l
}

// objectName returns the name in testBucket of the object at path.
func objectName(path string) string {
	return strings.TrimPrefix(path, "gs://"+testBucket+"/")
}

// historyBackends returns a local history folder and one on a fake Cloud
// Storage server (through a proxy that loses nothing unless armed), to run
// the same test on both.
func historyBackends(t *testing.T) map[string]string {
	startLossyGCS(t, false)
	return map[string]string{
		"local": filepath.Join(t.TempDir(), "history", "segformer"),
		"gcs":   "gs://" + testBucket + "/history/segformer",
	}
}

func newStore(t *testing.T) *storage.Store {
	s := storage.New(storage.Options{})
	t.Cleanup(func() { s.Close() })
	return s
}

func run(id string) HistoryLine {
	miou := 0.5
	return HistoryLine{Date: "2026-11-20", RunID: id, Output: "gs://runs/" + id, MIoU: &miou, Blessed: true}
}

func row(t *testing.T, id string) string {
	t.Helper()
	data, err := json.Marshal(run(id))
	if err != nil {
		t.Fatal(err)
	}
	return string(data) + "\n"
}

func runIDs(t *testing.T, store *storage.Store, dir string) []string {
	t.Helper()
	rows, err := ReadHistory(t.Context(), store, dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, r := range rows {
		ids = append(ids, r.RunID)
	}
	return ids
}

func TestRecordRun(t *testing.T) {
	tests := []struct {
		name    string
		initial *string // history.jsonl before; nil for none
		record  []string
		want    string // history.jsonl after
		wantErr string // part of the error; "" for none
	}{
		{name: "first run", record: []string{"a"}, want: row(t, "a")},
		{name: "next run", initial: ptr(row(t, "a")), record: []string{"b"}, want: row(t, "a") + row(t, "b")},
		{name: "retried publish", record: []string{"a", "a"}, want: row(t, "a")},
		{name: "already recorded", initial: ptr(row(t, "a") + row(t, "b")), record: []string{"a"}, want: row(t, "a") + row(t, "b")},
		{name: "recorded with other fields", initial: ptr(`{"run_id":"a","extra":[1]}` + "\n"), record: []string{"a"}, want: `{"run_id":"a","extra":[1]}` + "\n"},
		{name: "last line unterminated", initial: ptr(strings.TrimSuffix(row(t, "a"), "\n")), record: []string{"b"}, want: row(t, "a") + row(t, "b")},
		{name: "blank lines", initial: ptr("\n" + row(t, "a") + " \n"), record: []string{"b"}, want: "\n" + row(t, "a") + " \n" + row(t, "b")},
		{name: "run id as a substring", initial: ptr(`{"run_id":"x","output":"\"run_id\":\"a\""}` + "\n"), record: []string{"a"},
			want: `{"run_id":"x","output":"\"run_id\":\"a\""}` + "\n" + row(t, "a")},
		{name: "malformed row", initial: ptr(row(t, "a") + `{"run_id":"b"` + "\n"), record: []string{"c"},
			want: row(t, "a") + `{"run_id":"b"` + "\n", wantErr: "line 2: malformed row"},
		{name: "row without run id", initial: ptr(row(t, "a") + "\n" + `{"date":"2026-11-20"}` + "\n"), record: []string{"a"},
			want: row(t, "a") + "\n" + `{"date":"2026-11-20"}` + "\n", wantErr: "line 3: malformed row: no run_id"},
		{name: "no run id", record: []string{""}, wantErr: "no run id"},
	}
	for name, root := range historyBackends(t) {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			for i, tt := range tests {
				dir := storage.Join(root, fmt.Sprint(i))
				path := storage.Join(dir, HistoryFile)
				if tt.initial != nil {
					if err := store.WriteFile(t.Context(), path, []byte(*tt.initial)); err != nil {
						t.Fatal(err)
					}
				}
				var err error
				for _, id := range tt.record {
					if err = RecordRun(t.Context(), store, dir, run(id)); err != nil {
						break
					}
				}
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("%s: %v", tt.name, err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
				case tt.initial != nil && tt.wantErr != "" && !strings.Contains(err.Error(), path):
					t.Errorf("%s: error %q does not name %s", tt.name, err, path)
				}
				got, err := store.ReadFile(t.Context(), path)
				if tt.want == "" && tt.initial == nil {
					if err == nil {
						t.Errorf("%s: history created: %q", tt.name, got)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tt.want {
					t.Errorf("%s: history\n%s\nwant\n%s", tt.name, got, tt.want)
				}
			}
		})
	}
}

// A write of history.jsonl that lands but whose response is lost does not
// fail the run, and records it once: two nights in a row, each losing the
// response of its first successful write.
func TestRecordRunLostResponse(t *testing.T) {
	for _, cut := range []bool{false, true} {
		t.Run(map[bool]string{false: "503", true: "cut"}[cut], func(t *testing.T) {
			g := startLossyGCS(t, cut)
			store := newStore(t)
			dir := "gs://" + testBucket + "/history/segformer"
			for _, id := range []string{"night-1", "night-2"} {
				g.Arm(objectName(storage.Join(dir, HistoryFile)))
				if err := RecordRun(t.Context(), store, dir, run(id)); err != nil {
					t.Fatalf("%s: %v", id, err)
				}
			}
			if n := g.Lost(); n != 2 {
				t.Errorf("%d responses lost, want 2", n)
			}
			data, err := store.ReadFile(t.Context(), storage.Join(dir, HistoryFile))
			if err != nil {
				t.Fatal(err)
			}
			if want := row(t, "night-1") + row(t, "night-2"); string(data) != want {
				t.Errorf("history\n%s\nwant\n%s", data, want)
			}
		})
	}
}

// Runs of one model that finish together lose no line, even when each
// publishes twice.
func TestRecordRunConcurrent(t *testing.T) {
	for name, dir := range historyBackends(t) {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			const runs = 8
			var wg sync.WaitGroup
			errs := make(chan error, 2*runs)
			var want []string
			for i := range runs {
				id := fmt.Sprintf("run-%d", i)
				want = append(want, id)
				wg.Go(func() {
					for range 2 {
						errs <- RecordRun(t.Context(), store, dir, run(id))
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got := runIDs(t, store, dir)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("history holds %q, want each of %q once", got, want)
			}
		})
	}
}

func TestReadHistory(t *testing.T) {
	store := newStore(t)
	dir := t.TempDir()
	rows, err := ReadHistory(t.Context(), store, dir)
	if rows != nil || err != nil {
		t.Errorf("no history: %v, %v; want nil, nil", rows, err)
	}
	path := filepath.Join(dir, HistoryFile)
	if err := os.WriteFile(path, []byte(row(t, "a")+"\n"+row(t, "b")), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := runIDs(t, store, dir); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("run ids %q, want [a b]", got)
	}
	rows, err = ReadHistory(t.Context(), store, dir)
	if err != nil || *rows[0].MIoU != 0.5 || rows[0].Output != "gs://runs/a" || !rows[0].Blessed {
		t.Errorf("first row %+v, %v; want run a in full", rows[0], err)
	}
	if err := os.WriteFile(path, []byte(row(t, "a")+"not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadHistory(t.Context(), store, dir); err == nil || !strings.Contains(err.Error(), path+": line 2: malformed row") {
		t.Errorf("error %v, want one naming %s line 2", err, path)
	}
}

var (
	night1 = LatestRun{Output: "gs://runs/night-1", StartedAt: time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC), RunID: "night-1"}
	night2 = LatestRun{Output: "gs://runs/night-2", StartedAt: time.Date(2026, 11, 21, 2, 0, 0, 0, time.UTC), RunID: "night-2"}
	// rerun started at the same time as night 2.
	rerun = LatestRun{Output: "gs://runs/rerun", StartedAt: night2.StartedAt, RunID: "night-2-rerun"}
)

func TestAdvanceLatest(t *testing.T) {
	tests := []struct {
		name    string
		initial string // LATEST before; "" for none
		advance []LatestRun
		want    string // LATEST after
		wantErr string
	}{
		{name: "first blessed run", advance: []LatestRun{night1},
			want: "gs://runs/night-1\n2026-11-20T02:00:00Z night-1\n"},
		{name: "forward", advance: []LatestRun{night1, night2},
			want: "gs://runs/night-2\n2026-11-21T02:00:00Z night-2\n"},
		{name: "an earlier run finishing later", advance: []LatestRun{night2, night1},
			want: "gs://runs/night-2\n2026-11-21T02:00:00Z night-2\n"},
		{name: "same run", advance: []LatestRun{night1, night1},
			want: "gs://runs/night-1\n2026-11-20T02:00:00Z night-1\n"},
		{name: "same run, other fields", initial: "gs://runs/elsewhere\n2026-11-19T00:00:00Z night-1\n", advance: []LatestRun{night1},
			want: "gs://runs/elsewhere\n2026-11-19T00:00:00Z night-1\n"},
		{name: "same start, greater run id", advance: []LatestRun{night2, rerun},
			want: "gs://runs/rerun\n2026-11-21T02:00:00Z night-2-rerun\n"},
		{name: "same start, smaller run id", advance: []LatestRun{rerun, night2},
			want: "gs://runs/rerun\n2026-11-21T02:00:00Z night-2-rerun\n"},
		{name: "first format replaced", initial: "gs://runs/old\n", advance: []LatestRun{night1},
			want: "gs://runs/night-1\n2026-11-20T02:00:00Z night-1\n"},
		{name: "other time zone, fractions", advance: []LatestRun{night1, {Output: "/runs/x", RunID: "x",
			StartedAt: time.Date(2026, 11, 20, 3, 0, 0, 500, time.FixedZone("CET", 3600))}},
			want: "/runs/x\n2026-11-20T02:00:00.0000005Z x\n"},
		{name: "unparsable LATEST kept", initial: "gs://runs/old\nyesterday night-0\n", advance: []LatestRun{night1},
			want: "gs://runs/old\nyesterday night-0\n", wantErr: "line 2"},
		{name: "no start time", advance: []LatestRun{{Output: "o", RunID: "r"}}, wantErr: "no start time"},
		{name: "no output", advance: []LatestRun{{StartedAt: night1.StartedAt, RunID: "r"}}, wantErr: "no output path"},
		{name: "line break in output", advance: []LatestRun{{Output: "a\nb", StartedAt: night1.StartedAt, RunID: "r"}}, wantErr: "line breaks"},
		{name: "no run id", advance: []LatestRun{{Output: "o", StartedAt: night1.StartedAt}}, wantErr: "no run id"},
	}
	for name, root := range historyBackends(t) {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			for i, tt := range tests {
				dir := storage.Join(root, fmt.Sprint(i))
				path := storage.Join(dir, LatestFile)
				if tt.initial != "" {
					if err := store.WriteFile(t.Context(), path, []byte(tt.initial)); err != nil {
						t.Fatal(err)
					}
				}
				var err error
				for _, l := range tt.advance {
					if err = AdvanceLatest(t.Context(), store, dir, l); err != nil {
						break
					}
				}
				if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
					t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
				}
				got, err := store.ReadFile(t.Context(), path)
				if tt.want == "" {
					if err == nil {
						t.Errorf("%s: LATEST written: %q", tt.name, got)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != tt.want {
					t.Errorf("%s: LATEST %q, want %q", tt.name, got, tt.want)
				}
			}
		})
	}
}

// Moving LATEST forward survives lost responses, and a retried move of a
// run that has since been overtaken leaves the newer run in place.
func TestAdvanceLatestLostResponse(t *testing.T) {
	for _, cut := range []bool{false, true} {
		t.Run(map[bool]string{false: "503", true: "cut"}[cut], func(t *testing.T) {
			g := startLossyGCS(t, cut)
			store := newStore(t)
			dir := "gs://" + testBucket + "/history/segformer"
			for _, l := range []LatestRun{night1, night2, night1} {
				g.Arm(objectName(storage.Join(dir, LatestFile)))
				if err := AdvanceLatest(t.Context(), store, dir, l); err != nil {
					t.Fatalf("%s: %v", l.RunID, err)
				}
			}
			if n := g.Lost(); n != 2 {
				t.Errorf("%d responses lost, want 2", n)
			}
			got, ok, err := ReadLatest(t.Context(), store, dir)
			if err != nil || !ok || !sameRun(got, night2) {
				t.Errorf("ReadLatest = %+v, %v, %v; want %+v", got, ok, err, night2)
			}
		})
	}
}

func TestReadLatest(t *testing.T) {
	tests := []struct {
		name    string
		content *string // nil for no LATEST
		want    LatestRun
		ok      bool
		wantErr string
	}{
		{name: "none", content: nil},
		{name: "current format", content: ptr("gs://runs/night-2\n2026-11-21T02:00:00Z night-2\n"), want: night2, ok: true},
		{name: "fractions and zone", content: ptr("/runs/x\n2026-11-21T03:00:00.25+01:00 x\n"),
			want: LatestRun{Output: "/runs/x", StartedAt: time.Date(2026, 11, 21, 2, 0, 0, 250e6, time.UTC), RunID: "x"}, ok: true},
		{name: "run id with a space", content: ptr("o\n2026-11-21T02:00:00Z nightly run\n"),
			want: LatestRun{Output: "o", StartedAt: night2.StartedAt, RunID: "nightly run"}, ok: true},
		{name: "CRLF and later lines", content: ptr("gs://runs/night-2\r\n2026-11-21T02:00:00Z night-2\r\nmore: later\r\n"), want: night2, ok: true},
		{name: "first format", content: ptr("gs://runs/old\n"), want: LatestRun{Output: "gs://runs/old"}, ok: true},
		{name: "first format, unterminated", content: ptr(" gs://runs/old "), want: LatestRun{Output: "gs://runs/old"}, ok: true},
		{name: "empty", content: ptr("\n"), wantErr: "names no output path"},
		{name: "no run id", content: ptr("o\n2026-11-21T02:00:00Z\n"), wantErr: "line 2"},
		{name: "bad time", content: ptr("o\nlast night r\n"), wantErr: "line 2"},
	}
	store := newStore(t)
	for i, tt := range tests {
		dir := filepath.Join(t.TempDir(), fmt.Sprint(i))
		path := filepath.Join(dir, LatestFile)
		if tt.content != nil {
			if err := store.WriteFile(t.Context(), path, []byte(*tt.content)); err != nil {
				t.Fatal(err)
			}
		}
		got, ok, err := ReadLatest(t.Context(), store, dir)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s: error %v, want %q naming %s", tt.name, err, tt.wantErr, path)
			}
			continue
		}
		if err != nil || ok != tt.ok || !sameRun(got, tt.want) {
			t.Errorf("%s: ReadLatest = %+v, %v, %v; want %+v, %v", tt.name, got, ok, err, tt.want, tt.ok)
		}
	}
}

func ptr(s string) *string { return &s }

// sameRun reports whether a and b name the same run at the same instant,
// whatever the time zones.
func sameRun(a, b LatestRun) bool {
	return a.Output == b.Output && a.RunID == b.RunID && a.StartedAt.Equal(b.StartedAt)
}

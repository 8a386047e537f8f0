package admin

import (
	"encoding/json"
	"testing"
)

func TestReports(t *testing.T) {
	for _, tt := range []struct {
		rep      interface{ Summary() string }
		summary  string
		jsonForm string
	}{
		{ReplayReport{Queue: "q", ReplayResult: ReplayResult{Replayed: 1, Resumed: 2, Skipped: 3, Failed: 4, Unconfirmed: 5, IDs: []string{"a"}}},
			"replayed 1 dead letter from q.dlq, 2 already replayed by an interrupted replay (removed, not replayed again), 3 not selected, 4 failed, 5 published without a confirm (kept; the next replay completes them)",
			`{"queue":"q","dead_letter_queue":"q.dlq","dry_run":false,"replayed":1,"resumed":2,"skipped":3,"failed":4,"unreadable":0,"unconfirmed":5,"ids":["a"]}`},
		{ReplayReport{Queue: "q", DryRun: true}, "would replay 0 dead letters from q.dlq",
			`{"queue":"q","dead_letter_queue":"q.dlq","dry_run":true,"replayed":0,"resumed":0,"skipped":0,"failed":0,"unreadable":0,"unconfirmed":0,"ids":[]}`},
		{PurgeReport{Queue: "q", PurgeResult: PurgeResult{Purged: 2, IDs: []string{"a", "b"}}}, "purged 2 dead letters from q.dlq",
			`{"queue":"q","dead_letter_queue":"q.dlq","purged":2,"ids":["a","b"]}`},
		{ExportReport{Queue: "q", File: "f", Remove: true, ExportResult: ExportResult{Exported: 3, Removed: 3, Skipped: 1}},
			"exported 3 dead letters from q.dlq to f, removed 3, 1 not selected",
			`{"queue":"q","dead_letter_queue":"q.dlq","file":"f","exported":3,"removed":3,"skipped":1,"unreadable":0}`},
		{ImportReport{From: "stdin", Into: "q.dlq", ImportResult: ImportResult{Records: 10, Imported: 5, Duplicates: 2, Failed: 1}},
			"imported 5 dead letters from stdin into q.dlq, 2 already there (skipped), 1 failed, 2 not tried",
			`{"queue":"q.dlq","records":10,"imported":5,"duplicates":2,"failed":1}`},
	} {
		if got := tt.rep.Summary(); got != tt.summary {
			t.Errorf("summary\n got %s\nwant %s", got, tt.summary)
		}
		b, err := json.Marshal(tt.rep)
		if err != nil || string(b) != tt.jsonForm {
			t.Errorf("JSON\n got %s (%v)\nwant %s", b, err, tt.jsonForm)
		}
	}
}

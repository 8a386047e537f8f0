package worker

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenq/warren"
	"github.com/warrenq/warren/fleet"
)

func TestRunningIsCappedLongestFirst(t *testing.T) {
	var b beats
	b.init(Config{Hostname: "h", Queues: []string{"q"}})
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var ends []func()
	for i := range fleet.MaxRunning + 5 {
		// Started in reverse order: the last one registered ran longest.
		at := start.Add(time.Duration(fleet.MaxRunning+5-i) * time.Second)
		ends = append(ends, b.runStart(&warren.Task{ID: fmt.Sprint(i), Type: "t", Queue: "q"}, at))
	}
	rs, total := b.runningNow()
	if total != fleet.MaxRunning+5 || len(rs) != fleet.MaxRunning {
		t.Fatalf("got %d of %d, want %d of %d", len(rs), total, fleet.MaxRunning, fleet.MaxRunning+5)
	}
	if rs[0].ID != fmt.Sprint(fleet.MaxRunning+4) || rs[0].Queue != "q" || rs[0].Type != "t" {
		t.Errorf("first: %+v, want the longest-running", rs[0])
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Started.Before(rs[i-1].Started) {
			t.Fatalf("not longest-running first at %d: %v", i, rs)
		}
	}
	for _, end := range ends {
		end()
	}
	if rs, total := b.runningNow(); len(rs) != 0 || total != 0 || rs == nil {
		t.Errorf("after the ends: %v, %d (want an empty list, not nil)", rs, total)
	}
}

func TestPoolIDsDiffer(t *testing.T) {
	var a, b beats
	a.init(Config{Hostname: "h"})
	b.init(Config{Hostname: "h"})
	if a.id == b.id || a.id[:2] != "h/" {
		t.Errorf("ids %q and %q", a.id, b.id)
	}
}

func TestHeartbeatDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.HeartbeatInterval != DefaultHeartbeatInterval || c.PauseCheckInterval != DefaultPauseCheckInterval || c.Version == "" {
		t.Errorf("defaults: heartbeat %s, pause check %s, version %q", c.HeartbeatInterval, c.PauseCheckInterval, c.Version)
	}
	c = Config{HeartbeatInterval: -1, PauseCheckInterval: -1, Version: "v9"}.withDefaults()
	if c.HeartbeatInterval != -1 || c.PauseCheckInterval != -1 || c.Version != "v9" {
		t.Errorf("kept: heartbeat %s, pause check %s, version %q", c.HeartbeatInterval, c.PauseCheckInterval, c.Version)
	}
}

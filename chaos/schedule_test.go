package chaos

import (
	"reflect"
	"testing"
	"time"
)

// TestPlanReplaysFromSeed: the same seed plans the same faults, another
// seed others; every fault lies inside the fault phase, in order, and a
// partition is never planned for faults that do not include it.
func TestPlanReplaysFromSeed(t *testing.T) {
	cfg := DefaultConfig().withDefaults()
	cfg.Duration = 5 * time.Minute
	cfg = cfg.withDefaults()
	a, b := plan(cfg), plan(cfg)
	if len(a) < 10 || !reflect.DeepEqual(a, b) {
		t.Fatalf("seed %d planned %d faults, then %d different ones", cfg.Seed, len(a), len(b))
	}
	cfg.Seed = 2
	if c := plan(cfg); reflect.DeepEqual(a, c) {
		t.Error("seeds 1 and 2 planned the same faults")
	}
	kinds := map[string]bool{}
	for i, f := range a {
		kinds[f.Kind] = true
		if f.At < cfg.Warmup || f.At+f.Length > cfg.Duration-cfg.Cooldown || (i > 0 && f.At <= a[i-1].At+a[i-1].Length) {
			t.Errorf("fault %d (%v at %v) outside the fault phase or overlapping the one before", i, f, f.At)
		}
	}
	if len(kinds) != len(AllFaults) {
		t.Errorf("5 minutes of every fault planned only %v", kinds)
	}
	cfg.Faults = []string{FaultKill}
	for _, f := range plan(cfg) {
		if f.Kind != FaultKill {
			t.Fatalf("--faults kill planned %v", f)
		}
	}
}

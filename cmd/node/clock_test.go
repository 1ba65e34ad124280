package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestJumpClockFlag: --clock system+jumps serves POST /debug/clock?jump=,
// which shifts the clock both ways and refuses what is not a duration;
// the system clock serves no such handler.
func TestJumpClockFlag(t *testing.T) {
	if _, h, err := (&nodeFlags{clock: "system"}).batchClock(); err != nil || h != nil {
		t.Fatalf("system: handler %v, err %v; want none", h, err)
	}
	_, h, err := (&nodeFlags{clock: "system+jumps"}).batchClock()
	if err != nil || h == nil {
		t.Fatalf("system+jumps: handler %v, err %v", h, err)
	}
	jump := func(q string) (int, int64) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/debug/clock?jump="+q, nil))
		var doc struct {
			Offset int64 `json:"offset_ms"`
		}
		json.Unmarshal(w.Body.Bytes(), &doc)
		return w.Code, doc.Offset
	}
	if code, off := jump("5s"); code != 200 || off != 5000 {
		t.Errorf("jump=5s: %d, offset %d ms; want 200, 5000", code, off)
	}
	if code, off := jump("-7s"); code != 200 || off != -2000 {
		t.Errorf("jump=-7s: %d, offset %d ms; want 200, -2000", code, off)
	}
	if code, _ := jump("soon"); code != http.StatusBadRequest {
		t.Errorf("jump=soon: %d, want 400", code)
	}
	if _, _, err := (&nodeFlags{clock: "sundial"}).batchClock(); err == nil {
		t.Error("--clock sundial accepted")
	}
}

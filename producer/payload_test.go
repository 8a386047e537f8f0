package producer

import "testing"

func TestCheckJSON(t *testing.T) {
	for _, ok := range []string{`{}`, `null`, ` [1,2] `, `"s"`, `1e3`} {
		if err := CheckJSON([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{``, ` `, `{`, `{} {}`, `{'a':1}`, `nul`} {
		if err := CheckJSON([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "Application/JSON; charset=utf-8": true, "application/vnd.api+json": true,
		"text/plain": false, "application/octet-stream": false, "": false,
	} {
		if got := IsJSON(ct); got != want {
			t.Errorf("IsJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

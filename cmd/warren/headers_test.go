package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/warrenq/warren"
)

func TestParseHeaders(t *testing.T) {
	h, err := parseHeaders([]string{"tenant=acme", " region = eu=west", "empty="})
	if err != nil {
		t.Fatal(err)
	}
	if h["tenant"] != "acme" || h["region"] != " eu=west" || h["empty"] != "" || len(h) != 3 {
		t.Fatalf("parsed %v", h)
	}
	for _, bad := range []string{"novalue", "=v", "x-death=1", warren.HeaderAttempt + "=3"} {
		_, err := parseHeaders([]string{bad})
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("--header %q: err %v, want a usage error", bad, err)
		}
	}
}

// FuzzParseHeaders: any --header value is either a usage error or a
// header whose name is neither empty nor reserved; it never panics.
func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{"a=b", "x-delivery-count=9", "warren-attempt=1", "=", "k==v", " k =v", "\x00=\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, kv string) {
		h, err := parseHeaders([]string{kv})
		if err != nil {
			var ue *usageError
			if !errors.As(err, &ue) {
				t.Fatalf("%q: error %v is not a usage error", kv, err)
			}
			return
		}
		if len(h) != 1 {
			t.Fatalf("%q: %d headers", kv, len(h))
		}
		for k, v := range h {
			if k == "" || k != strings.TrimSpace(k) || strings.HasPrefix(k, "x-") || strings.HasPrefix(k, warren.HeaderPrefix) {
				t.Fatalf("%q: accepted header name %q", kv, k)
			}
			if _, after, _ := strings.Cut(kv, "="); v != after {
				t.Fatalf("%q: value %q, want %q", kv, v, after)
			}
		}
	})
}

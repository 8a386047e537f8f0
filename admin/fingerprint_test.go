package admin

import "testing"

func TestFingerprint(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"dial tcp 10.0.0.7:5432: connection refused", "dial tcp <addr>: connection refused"},
		{"dial tcp 10.0.0.9:5432: connection refused", "dial tcp <addr>: connection refused"},
		{"dial tcp db-2.internal:5432: i/o timeout", "dial tcp <addr>: i/o timeout"},
		{"dial tcp [2001:db8::1]:443: connection reset by peer", "dial tcp <addr>: connection reset by peer"},
		{"user 0190a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b not found", "user <uuid> not found"},
		{`order "A-1234" rejected: stock 0 < 3`, `order "…" rejected: stock <n> < <n>`},
		{"object 5f2b9c0e1d7a not in bucket 'images'", `object <hex> not in bucket "…"`},
		{"pointer 0xc000123456 is nil", "pointer <hex> is nil"},
		{"timeout after 30.5s (attempt 3)", "timeout after <n>s (attempt <n>)"},
		{"\n\n  panic: boom 42  \n\tgoroutine 7 [running]:\n", "panic: boom <n>"},
		{"worker:   handler  failed", "worker: handler failed"},
		{"request accepted deadbeefed", "request accepted deadbeefed"}, // hex-looking words without digits stay
	} {
		if got := Fingerprint(c.in); got != c.want {
			t.Errorf("Fingerprint(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

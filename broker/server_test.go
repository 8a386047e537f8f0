package broker

import "testing"

func TestParseVersion(t *testing.T) {
	cases := []struct {
		in   string
		want Version
		ok   bool
	}{
		{"3.10.8", Version{3, 10, 8}, true},
		{"4.0.0-rc.1", Version{4, 0, 0}, true},
		{"3.13.7+2.g1234", Version{3, 13, 7}, true},
		{"4.1", Version{4, 1, 0}, true},
		{"", Version{}, false},
		{"4", Version{}, false},
		{"x.y.z", Version{}, false},
		{"3.-1.0", Version{}, false},
	}
	for _, c := range cases {
		got, err := ParseVersion(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	v := Version{3, 13, 0}
	if !v.AtLeast(3, 13) || !v.AtLeast(3, 10) || v.AtLeast(4, 0) || v.AtLeast(3, 14) {
		t.Errorf("AtLeast wrong for %v", v)
	}
}

package filter

import "testing"

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "512": 512, "1k": 1024, "1K": 1024, "1kb": 1024, "1KiB": 1024,
		"1.5M": 3 << 19, "2g": 2 << 30, "1 t": 1 << 40, "100b": 100,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "1x", "-1", "1.2.3k", "99999999999t"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestSize_Contains(t *testing.T) {
	s := Size{Min: 10, Max: 100}
	for n, want := range map[int64]bool{0: false, 9: false, 10: true, 100: true, 101: false} {
		if got := s.Contains(n); got != want {
			t.Errorf("%v.Contains(%d) = %v, want %v", s, n, got, want)
		}
	}
	if !(Size{}).Contains(1 << 50) {
		t.Error("the zero Size must hold every size")
	}
	if !(Size{Min: 5}).Contains(1<<50) || (Size{Max: 5}).Contains(6) {
		t.Error("an open bound must be open")
	}
}

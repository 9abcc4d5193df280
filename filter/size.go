package filter

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size is a range of file sizes, for the size rules of a sync (min-size,
// max-size): regular files outside it are not mirrored. Directories,
// symlinks and other entries are never left out for their size.
//
// Like rsync's --min-size and --max-size, Size concerns the source: a file
// outside the range is not sent, and the copy the destination holds under
// that name, if any, is left as it is, neither updated nor deleted. A name
// that the source no longer has is deleted on the destination whatever its
// size.
//
// The zero Size holds every size.
type Size struct {
	Min int64 // smallest size mirrored; 0 for no lower bound
	Max int64 // largest size mirrored; 0 for no upper bound
}

// Contains reports whether a regular file of n bytes is mirrored.
func (s Size) Contains(n int64) bool {
	return n >= s.Min && (s.Max == 0 || n <= s.Max)
}

// IsZero reports whether s holds every size.
func (s Size) IsZero() bool { return s.Min == 0 && s.Max == 0 }

// String describes the range for people: "at least 1.0 KiB and at most
// 100.0 MiB".
func (s Size) String() string {
	switch {
	case s.IsZero():
		return "any size"
	case s.Max == 0:
		return "at least " + FormatSize(s.Min)
	case s.Min == 0:
		return "at most " + FormatSize(s.Max)
	}
	return "at least " + FormatSize(s.Min) + " and at most " + FormatSize(s.Max)
}

// sizeUnits are the suffixes ParseSize takes, powers of 1024 as rsync's.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}

// ParseSize parses a size such as "512", "100k", "1.5M" or "2GiB". The
// suffix is case-insensitive and in powers of 1024 (k, m, g, t, with or
// without "b" or "ib").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("bad size %q: want a number of bytes with an optional k, m, g or t suffix (powers of 1024), such as 100k or 1.5G", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q: %w", s, err)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q: too large", s)
	}
	return int64(v), nil
}

// FormatSize formats n bytes for people: "512 B", "1.5 KiB".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

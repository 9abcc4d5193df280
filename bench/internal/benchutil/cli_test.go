package benchutil

import (
	"slices"
	"testing"
)

func TestToolNames(t *testing.T) {
	got, err := ToolNames([]string{" fsmirror", "", "lsyncd ", "fsmirror"})
	if want := []string{"fsmirror", "lsyncd"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ToolNames = %q, %v; want %q", got, err, want)
	}
	for _, none := range [][]string{nil, {""}, {" ", ""}} {
		if got, err := ToolNames(none); err == nil {
			t.Errorf("ToolNames(%q) = %q, want an error", none, got)
		}
	}
}

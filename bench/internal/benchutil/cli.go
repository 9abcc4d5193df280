package benchutil

import (
	"errors"
	"slices"
	"strings"
)

// ToolNames returns the names in a -tools list, trimmed, in their order,
// without empty ones and repeats; an empty list is an error.
func ToolNames(list []string) ([]string, error) {
	var names []string
	for _, n := range list {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, errors.New("no tools to measure")
	}
	return names, nil
}
